// One completion, step by step, on its own InferenceSession: the first step
// prefills the prompt (and scores it when `echo` asks for logprobs), each later
// step samples one token. Each step returns what a client is sent: text (whole
// UTF-8 characters only, held back while it may still become a stop sequence),
// the steps' token logprobs, and at the end the finish reason. The server's
// scheduler interleaves the steps of many runs; nothing here knows HTTP.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropescale/model/session.h"
#include "ropescale/model/token_spans.h"
#include "ropescale/model/tokenizer.h"
#include "ropescale/serve/completion_request.h"
#include "ropescale/serve/serve_policy.h"

namespace ropescale {

// OpenAI's legacy logprobs object, for the tokens of one step (or a whole response).
struct TokenLogprobs {
  std::vector<std::string> tokens;
  std::vector<std::optional<double>> token_logprobs;  // null for the first prompt token
  std::vector<nlohmann::json> top_logprobs;           // {text: logprob} objects (null with the first prompt token)
  std::vector<int64_t> text_offset;
  void append(const TokenLogprobs& o);
  nlohmann::json to_json() const;
};

// The KV cache every run of a server keeps (`serve --kv-cache --kv-window --kv-sinks
// --kv-budget-tokens --kv-protect --self-extend-*`).
struct KvPolicy {
  SessionOptions session;  // its kv_cache, kv_window, kv_sinks, kv_budget, self_extend; the rest is set per run
  // With a budget: the prompt tokens it matches are never evicted (compiled once, for every request).
  std::shared_ptr<const TokenPattern> protect;
};

struct CompletionStep {
  std::string text;                       // new text for the client
  TokenLogprobs logprobs;                 // this step's tokens (when logprobs were asked for)
  std::optional<std::string> finish;      // "stop" or "length" on the last step
};

// Throws ApiError (400, param "prompt") naming the first id outside [0, vocab_size).
void check_prompt_ids(const std::vector<int>& prompt, int vocab_size);
// KV positions a request holds: its prompt and max_tokens (at least one: the prefill's last logits).
int64_t tokens_needed(size_t prompt_tokens, int max_tokens);

class CompletionRun {
 public:
  // `prompt` is token ids (BOS first when the request gave text). Throws ApiError (400) for ids
  // outside the vocabulary, and when the policy's protected spans cover more than half of its
  // budget; std::length_error never escapes (the session holds prompt + max_tokens, or a window or
  // budget that never fills).
  CompletionRun(const LlamaModel& model, const Tokenizer& tok, const CompletionRequest& request, std::vector<int> prompt,
                const RopeChoice& rope, const KvPolicy& kv, int threads);

  CompletionStep step();
  bool done() const { return finished_; }

  // A decode step in two halves, so the engine can batch several runs' forward passes:
  // sample_next() samples and reports the next token (the step's text, logprobs, finish); unless
  // that finished the run, the token is pending and must be fed — together with other runs'
  // through InferenceSession::forward_batch and accept_logits(), or alone with advance().
  bool prefilled() const { return prefilled_; }
  CompletionStep sample_next();
  bool has_pending_token() const { return pending_token_ >= 0; }
  int pending_token() const { return pending_token_; }
  // False when feeding the pending token moves a length-dependent setting's frequencies: the run
  // then re-prefills alone (advance()).
  bool batchable() const;
  void advance();
  void accept_logits(const float* logits);
  InferenceSession& session() { return *session_; }
  int prompt_tokens() const { return static_cast<int>(prompt_.size()); }
  int completion_tokens() const { return generated_; }
  int64_t context() const { return context_; }  // the session's KV capacity (tokens)

  // KV bytes a request of `tokens` tokens holds under `kv`, for admission: what its session allocates
  // (session_cache_rows: the tokens, or the window / budget).
  static size_t kv_bytes(const LlamaModel& model, int64_t tokens, const KvPolicy& kv);

 private:
  CompletionStep prefill();
  CompletionStep decode();
  // Scores `token` against `logits`, adding it to `out` at text offset `offset` with text `piece`.
  void score(const float* logits, int token, const std::string& piece, TokenLogprobs& out);
  // Moves complete UTF-8 text from pending_ into the step, holding back a possible stop prefix.
  void release_text(CompletionStep& s, bool final);
  int sample(const std::vector<float>& logits);
  std::string piece_text(int previous, int token) const;

  const LlamaModel& model_;
  const Tokenizer& tok_;
  CompletionRequest req_;
  std::vector<int> prompt_;
  std::vector<int> sequence_;  // prompt + generated (for re-prefills)
  RopeSpec spec_;
  bool recompute_ = false;
  int64_t context_ = 0;
  std::unique_ptr<InferenceSession> session_;
  std::vector<float> logits_;
  std::mt19937_64 rng_;
  int prev_ = 0, generated_ = 0, pending_token_ = -1;
  bool prefilled_ = false, finished_ = false;
  std::string pending_;       // generated bytes not yet sent
  int64_t offset_ = 0;        // text offset of the next token (bytes of the returned text)
};

}  // namespace ropescale
