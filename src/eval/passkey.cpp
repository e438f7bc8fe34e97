#include "ropescale/eval/passkey.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include "next_token_nll.h"

namespace ropescale {

namespace {

const char* const kIntro =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
    "I will quiz you about the important information there.";
const char* const kFiller[] = {"The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
                               "There and back again."};
const char* const kQuestion = "What is the pass key? The pass key is";

std::string needle(const std::string& key) {
  return "The pass key is " + key + ". Remember it. " + key + " is the pass key.";
}


// The filler: whole sentences of the built-in text, repeated while they fit
// (so no sentence is cut and a prompt may end up to one sentence short of its
// length), or exactly `n` tokens of a haystack file (repeated if it is short).
// The needle goes at the sentence boundary nearest the depth.
struct Filler {
  std::vector<std::vector<int>> sentences;  // built-in
  std::vector<int> haystack;                // from a file
  struct Text {
    std::vector<int> ids;
    std::vector<int64_t> boundaries;  // token offsets where the needle may go
  };
  Text take(int64_t n) const {
    Text t;
    t.boundaries.push_back(0);
    if (!haystack.empty()) {
      while (int64_t(t.ids.size()) < n)
        t.ids.insert(t.ids.end(), haystack.begin(), haystack.begin() + std::min<int64_t>(haystack.size(), n - t.ids.size()));
      for (int64_t i = 1; i <= n; ++i) t.boundaries.push_back(i);
      return t;
    }
    for (size_t i = 0;; i = (i + 1) % sentences.size()) {
      if (int64_t(t.ids.size() + sentences[i].size()) > n) break;
      t.ids.insert(t.ids.end(), sentences[i].begin(), sentences[i].end());
      t.boundaries.push_back(int64_t(t.ids.size()));
    }
    return t;
  }
};

int64_t nearest(const std::vector<int64_t>& sorted, double at) {
  int64_t best = sorted.front();
  for (int64_t b : sorted)
    if (std::abs(double(b) - at) < std::abs(double(best) - at)) best = b;
  return best;
}

}  // namespace

std::string random_passkey(std::mt19937_64& rng, int digits) {
  int64_t lo = 1;
  for (int i = 1; i < digits; ++i) lo *= 10;
  return std::to_string(std::uniform_int_distribution<int64_t>(lo, lo * 10 - 1)(rng));
}

const char* passkey_intro() { return kIntro; }
const std::vector<std::string>& passkey_filler_sentences() {
  static const std::vector<std::string> s(std::begin(kFiller), std::end(kFiller));
  return s;
}
std::string passkey_needle(const std::string& key) { return needle(key); }
const char* passkey_question() { return kQuestion; }

std::vector<PasskeyPrompt> build_passkey_prompts(const Tokenizer& tok, const PasskeyOptions& o) {
  if (o.lengths.empty() || o.depths.empty() || o.trials < 1)
    throw std::invalid_argument("passkey: give at least one length, one depth and one trial");
  if (o.alternatives < 1 || o.digits < 1 || o.digits > 12)
    throw std::invalid_argument("passkey: alternatives must be >= 1 and digits 1 … 12");
  for (double d : o.depths)
    if (!(d >= 0 && d <= 1)) throw std::invalid_argument("passkey: depth " + std::to_string(d) + " is outside 0 … 1");
  const int64_t longest = *std::max_element(o.lengths.begin(), o.lengths.end());
  Filler filler;
  if (o.haystack.empty()) {
    for (const char* s : kFiller) filler.sentences.push_back(tok.encode(s, false, false));
  } else {  // enough text for the longest prompt (≥ 1 byte per token), repeated if short
    filler.haystack = tok.encode(o.haystack.substr(0, std::min<size_t>(o.haystack.size(), size_t(longest) * 8)), false, false);
    if (filler.haystack.empty()) throw std::invalid_argument("passkey: the haystack text is empty");
  }
  const std::vector<int> intro = tok.encode(kIntro, true, false);

  std::vector<PasskeyPrompt> prompts;
  for (size_t li = 0; li < o.lengths.size(); ++li)
    for (size_t di = 0; di < o.depths.size(); ++di)
      for (int trial = 0; trial < o.trials; ++trial) {
        std::seed_seq seq{uint64_t(o.seed), uint64_t(o.lengths[li]), uint64_t(di), uint64_t(trial)};
        std::mt19937_64 rng(seq);
        PasskeyPrompt p;
        p.length = o.lengths[li];  // the target; built-in filler may leave it up to one sentence short
        p.depth = o.depths[di];
        p.trial = trial;
        p.key = random_passkey(rng, o.digits);
        std::set<std::string> used{p.key};
        while (int(p.alternatives.size()) < o.alternatives) {
          std::string k = random_passkey(rng, o.digits);
          if (used.insert(k).second) p.alternatives.push_back(k);
        }
        // "… The pass key is" + " KEY": the question is the tokens every candidate shares.
        std::vector<std::vector<int>> full{tok.encode(std::string(kQuestion) + " " + p.key, false, false)};
        for (const auto& k : p.alternatives) full.push_back(tok.encode(std::string(kQuestion) + " " + k, false, false));
        size_t common = full[0].size();
        for (const auto& f : full)
          common = std::min<size_t>(common, std::mismatch(f.begin(), f.end(), full[0].begin(), full[0].end()).first - f.begin());
        for (const auto& f : full) {
          if (f.size() == common) throw std::invalid_argument("passkey: the tokenizer merges a key into the question");
          p.answers.emplace_back(f.begin() + common, f.end());
        }
        const std::vector<int> question(full[0].begin(), full[0].begin() + common);
        const std::vector<int> needle_ids = tok.encode(needle(p.key), false, false);
        const int64_t fixed = int64_t(intro.size() + needle_ids.size() + question.size());
        const int64_t n_filler = p.length - fixed;
        if (n_filler < 0)
          throw std::invalid_argument("passkey: length " + std::to_string(p.length) + " is shorter than the prompt's " +
                                      std::to_string(fixed) + " fixed tokens");
        const Filler::Text hay = filler.take(n_filler);
        const int64_t at = nearest(hay.boundaries, p.depth * double(hay.ids.size()));
        p.ids = intro;
        p.ids.insert(p.ids.end(), hay.ids.begin(), hay.ids.begin() + at);
        p.needle_at = int64_t(p.ids.size());
        p.ids.insert(p.ids.end(), needle_ids.begin(), needle_ids.end());
        p.ids.insert(p.ids.end(), hay.ids.begin() + at, hay.ids.end());
        p.ids.insert(p.ids.end(), question.begin(), question.end());
        prompts.push_back(std::move(p));
      }
  return prompts;
}

bool passkey_exact(const std::string& generated, const std::string& key) {
  const size_t a = generated.find_first_not_of(' ');
  if (a == std::string::npos) return false;
  const size_t b = generated.find_first_not_of("0123456789", a);
  return generated.substr(a, b == std::string::npos ? std::string::npos : b - a) == key;
}

void rank_passkey_answers(PasskeyTrial& t, const std::vector<double>& lp, const std::vector<std::vector<int>>& answers) {
  t.key_logprob = lp.at(0);
  t.key_tokens = int(answers.at(0).size());
  t.rank = 1;
  for (size_t i = 1; i < lp.size(); ++i) t.rank += lp[i] > lp[0];
}

int passkey_generate_tokens(const std::vector<PasskeyPrompt>& prompts) {
  size_t longest_answer = 0;
  for (const auto& p : prompts)
    for (const auto& a : p.answers) longest_answer = std::max(longest_answer, a.size());
  return int(longest_answer) + 2;
}

std::vector<PasskeyTrial> evaluate_passkey(const LlamaModel& model, const Tokenizer& tok,
                                           const std::vector<RopeSetting>& methods,
                                           const std::vector<PasskeyPrompt>& prompts, const PasskeyOptions& o,
                                           const EvalProgress& progress) {
  int64_t longest = 0, total = 0;
  for (const auto& p : prompts) {
    longest = std::max<int64_t>(longest, int64_t(p.ids.size()));
    total += int64_t(p.ids.size()) * int64_t(methods.size());
  }
  const int generate = passkey_generate_tokens(prompts);
  const int V = model.hp.vocab_size;
  std::vector<PasskeyTrial> out;
  int64_t done = 0;
  for (const auto& m : methods) {
    InferenceSession s(model, session_options_for(m, o.run, longest + generate));
    for (const auto& p : prompts) {
      PasskeyTrial t{m.label, p.length, p.depth, p.trial, p.key, "", false, 1, 0.0, 0};
      s.reset();
      const std::vector<float> last = s.forward(p.ids);
      const int64_t end = s.position();
      // Greedy continuation.
      std::vector<float> logits = last;
      int prev = p.ids.back();
      for (int i = 0; i < generate; ++i) {
        const int next = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
        if (next == tok.eos() || next == tok.bos()) break;
        t.generated += tok.decode(prev, next);
        prev = next;
        logits = s.forward(std::span<const int>(&next, 1));
      }
      t.exact = passkey_exact(t.generated, p.key);
      // log p(candidate | prompt) for the key and each alternative.
      std::vector<double> lp;
      for (const auto& ans : p.answers) {
        s.rewind(end);
        double sum = -next_token_nll(last.data(), V, ans[0]);
        if (ans.size() > 1) {
          const auto rows = s.forward(std::span<const int>(ans.data(), ans.size() - 1), true);
          for (size_t i = 1; i < ans.size(); ++i) sum -= next_token_nll(rows.data() + (i - 1) * V, V, ans[i]);
        }
        lp.push_back(sum);
      }
      rank_passkey_answers(t, lp, p.answers);
      out.push_back(std::move(t));
      done += int64_t(p.ids.size());
      if (progress) progress(done, total);
    }
  }
  return out;
}

std::vector<PasskeyCell> passkey_cells(const std::vector<PasskeyTrial>& trials, int alternatives) {
  std::vector<PasskeyCell> cells;
  std::map<std::tuple<std::string, int64_t, double>, size_t> index;
  for (const auto& t : trials) {
    auto [it, fresh] = index.try_emplace({t.method, t.length, t.depth}, cells.size());
    if (fresh) cells.push_back({t.method, t.length, t.depth});
    PasskeyCell& c = cells[it->second];
    ++c.trials;
    c.exact += t.exact;
    c.mean_rank += t.rank;
    c.rank_score += 1.0 - double(t.rank - 1) / std::max(1, alternatives);
    c.needle_nll += -t.key_logprob / std::max(1, t.key_tokens);
  }
  for (auto& c : cells) c.mean_rank /= c.trials, c.rank_score /= c.trials, c.needle_nll /= c.trials;
  return cells;
}

}  // namespace ropescale
