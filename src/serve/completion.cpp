#include "ropescale/serve/completion.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ropescale {

using nlohmann::json;

void TokenLogprobs::append(const TokenLogprobs& o) {
  tokens.insert(tokens.end(), o.tokens.begin(), o.tokens.end());
  token_logprobs.insert(token_logprobs.end(), o.token_logprobs.begin(), o.token_logprobs.end());
  top_logprobs.insert(top_logprobs.end(), o.top_logprobs.begin(), o.top_logprobs.end());
  text_offset.insert(text_offset.end(), o.text_offset.begin(), o.text_offset.end());
}

json TokenLogprobs::to_json() const {
  json lp = json::array();
  for (const auto& x : token_logprobs) lp.push_back(x ? json(*x) : json());
  return {{"tokens", tokens}, {"token_logprobs", lp}, {"top_logprobs", top_logprobs}, {"text_offset", text_offset}};
}

void check_prompt_ids(const std::vector<int>& prompt, int vocab_size) {
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= vocab_size)
      throw ApiError(400, "prompt[" + std::to_string(i) + "]: token id " + std::to_string(prompt[i]) +
                              " is outside the vocabulary (0 … " + std::to_string(vocab_size - 1) + ")", "prompt");
}

int64_t tokens_needed(size_t prompt_tokens, int max_tokens) { return int64_t(prompt_tokens) + std::max(1, max_tokens); }

size_t CompletionRun::kv_bytes(const LlamaModel& m, int64_t tokens, const KvPolicy& kv) {
  SessionOptions so = kv.session;
  so.max_context = tokens;
  return kv_cache_bytes(so.kv_cache, m.hp.n_layers, m.hp.n_kv_heads, m.hp.head_dim, session_cache_rows(so, m.hp.trained_context));
}

CompletionRun::CompletionRun(const LlamaModel& model, const Tokenizer& tok, const CompletionRequest& request,
                             std::vector<int> prompt, const RopeChoice& rope, const KvPolicy& kv, int threads)
    : model_(model), tok_(tok), req_(request), prompt_(std::move(prompt)) {
  if (prompt_.empty()) throw ApiError(400, "prompt: is empty", "prompt");
  check_prompt_ids(prompt_, model.hp.vocab_size);
  context_ = tokens_needed(prompt_.size(), req_.max_tokens);
  SessionOptions so = kv.session;
  so.max_context = context_;
  so.rope = spec_ = rope.setting.spec;
  // With a window a length-dependent setting follows the cache's length (session.h), which stops
  // moving once the window is full: no re-prefill, which through a window would not be a fresh
  // pass over the sequence anyway.
  recompute_ = rope.recompute_on_change && so.kv_window == 0;
  // A length-dependent setting prefills in one chunk, as a fresh forward pass over the sequence does
  // (frequencies for its whole length); chunked, each chunk would use its own length's.
  if (recompute_) so.chunk = static_cast<int>(context_);
  so.threads = threads;
  if (kv.protect && so.kv_budget > 0) {
    so.kv_protect = kv.protect->spans(tok, prompt_);
    const int64_t covered = covered_positions(so.kv_protect);
    if (covered > so.kv_budget / 2)  // more would leave eviction nothing to take
      throw ApiError(400, "prompt: the server's --kv-protect pattern covers " + std::to_string(covered) +
                              " of its tokens, more than half of the --kv-budget-tokens " + std::to_string(so.kv_budget), "prompt");
  }
  sequence_ = prompt_;
  session_ = std::make_unique<InferenceSession>(model, so);
  rng_.seed(req_.seed ? *req_.seed : std::random_device{}());
}

std::string CompletionRun::piece_text(int previous, int token) const {
  if (token == tok_.bos() || token == tok_.eos()) return "";  // specials have no text
  return tok_.decode(previous, token);
}

void CompletionRun::score(const float* logits, int token, const std::string& piece, TokenLogprobs& out) {
  const int V = model_.hp.vocab_size;
  const float top = *std::max_element(logits, logits + V);
  double sum = 0;
  for (int i = 0; i < V; ++i) sum += std::exp(double(logits[i]) - top);
  const double lse = top + std::log(sum);
  out.tokens.push_back(piece);
  out.token_logprobs.push_back(double(logits[token]) - lse);
  out.text_offset.push_back(offset_);
  json alternatives = json::object();
  if (req_.logprobs && *req_.logprobs > 0) {
    std::vector<int> ids(V);
    std::iota(ids.begin(), ids.end(), 0);
    const int n = std::min(*req_.logprobs, V);
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    for (int k = 0; k < n; ++k) alternatives[piece_text(prev_, ids[k])] = double(logits[ids[k]]) - lse;
  }
  alternatives[piece] = double(logits[token]) - lse;  // the chosen token is always among them (OpenAI's rule)
  out.top_logprobs.push_back(alternatives);
}

CompletionStep CompletionRun::prefill() {
  CompletionStep s;
  prefilled_ = true;
  const bool score_prompt = req_.echo && req_.logprobs;
  auto all = session_->forward(prompt_, score_prompt);
  const int V = model_.hp.vocab_size;
  if (req_.echo) {
    std::string text;
    for (size_t i = 0; i < prompt_.size(); ++i) {
      const std::string piece = piece_text(i == 0 ? -1 : prompt_[i - 1], prompt_[i]);
      if (score_prompt) {
        if (i == 0) {  // nothing predicts the first token
          s.logprobs.tokens.push_back(piece);
          s.logprobs.token_logprobs.push_back(std::nullopt);
          s.logprobs.top_logprobs.push_back(json());
          s.logprobs.text_offset.push_back(offset_);
        } else {
          prev_ = prompt_[i - 1];
          score(all.data() + (i - 1) * size_t(V), prompt_[i], piece, s.logprobs);
        }
      }
      text += piece;
      offset_ += int64_t(piece.size());
    }
    s.text = req_.prompt ? *req_.prompt : text;  // the prompt as the client sent it
    offset_ = int64_t(s.text.size());
  }
  logits_.assign(all.end() - V, all.end());
  prev_ = prompt_.back();
  if (req_.max_tokens == 0) finished_ = true, s.finish = "length";
  return s;
}

int CompletionRun::sample(const std::vector<float>& logits) {
  if (req_.temperature <= 0) return int(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const float top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  for (size_t i = 0; i < p.size(); ++i) p[i] = std::exp((logits[i] - top) / req_.temperature);
  if (req_.top_p < 1.0) {  // nucleus: the most probable tokens up to top_p of the mass
    std::vector<int> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    const double total = std::accumulate(p.begin(), p.end(), 0.0);
    double mass = 0;
    size_t keep = 0;
    while (keep < order.size() && mass < req_.top_p * total) mass += p[order[keep++]];
    for (size_t k = keep; k < order.size(); ++k) p[order[k]] = 0;
  }
  return std::discrete_distribution<int>(p.begin(), p.end())(rng_);
}

namespace {

// Bytes at the end of `s` that start a UTF-8 character not yet complete.
size_t incomplete_utf8_tail(const std::string& s) {
  for (size_t back = 1; back <= std::min<size_t>(3, s.size()); ++back) {
    const unsigned char c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t need = utf8_sequence_length(c);
    return need > back ? back : 0;
  }
  return 0;
}

}  // namespace

void CompletionRun::release_text(CompletionStep& s, bool final) {
  size_t hold = 0;
  if (!final) {
    // The longest end of the pending text that could still grow into a stop sequence.
    for (const auto& stop : req_.stop)
      for (size_t k = std::min(stop.size() - 1, pending_.size()); k > hold; --k)
        if (pending_.compare(pending_.size() - k, k, stop, 0, k) == 0) {
          hold = k;
          break;
        }
    hold = std::max(hold, incomplete_utf8_tail(pending_));
  }
  s.text += pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
}

CompletionStep CompletionRun::sample_next() {
  CompletionStep s;
  const int next = sample(logits_);
  if (next == tok_.eos()) {
    finished_ = true;
    s.finish = "stop";
    release_text(s, true);
    return s;
  }
  const std::string piece = piece_text(prev_, next);
  if (req_.logprobs) score(logits_.data(), next, piece, s.logprobs);
  ++generated_;
  offset_ += int64_t(piece.size());
  pending_ += piece;
  size_t stop_at = std::string::npos;  // the earliest stop sequence in the text not yet sent
  for (const auto& stop : req_.stop) stop_at = std::min(stop_at, pending_.find(stop));
  if (stop_at != std::string::npos) {
    pending_.resize(stop_at);
    finished_ = true;
    s.finish = "stop";
    release_text(s, true);
    return s;
  }
  if (generated_ >= req_.max_tokens || session_->position() + 1 > context_) {
    finished_ = true;
    s.finish = "length";
    release_text(s, true);
    return s;
  }
  pending_token_ = next;
  release_text(s, false);
  return s;
}

bool CompletionRun::batchable() const {
  if (pending_token_ < 0 || !recompute_) return pending_token_ >= 0;
  const RopeFrequencies wanted = compute_frequencies(spec_, int64_t(sequence_.size()) + 1);
  return wanted.inv_freq == session_->current_frequencies().inv_freq &&
         wanted.attention_factor == session_->current_frequencies().attention_factor;
}

void CompletionRun::accept_logits(const float* logits) {
  sequence_.push_back(pending_token_);
  logits_.assign(logits, logits + model_.hp.vocab_size);
  prev_ = pending_token_;
  pending_token_ = -1;
}

void CompletionRun::advance() {
  if (pending_token_ < 0) return;
  if (!batchable()) {  // the frequencies moved with the length: a fresh prefill at the new length
    sequence_.push_back(pending_token_);
    session_->reset();
    const auto all = session_->forward(sequence_);
    sequence_.pop_back();
    accept_logits(all.data() + all.size() - model_.hp.vocab_size);
    return;
  }
  const auto logits = session_->forward(std::span<const int>(&pending_token_, 1));
  accept_logits(logits.data());
}

CompletionStep CompletionRun::decode() {
  CompletionStep s = sample_next();
  advance();
  return s;
}

CompletionStep CompletionRun::step() {
  if (finished_) return {};
  return prefilled_ ? decode() : prefill();
}

}  // namespace ropescale
