// What an evaluation runs on: the runtime (a model loaded here) or a served
// model (an Endpoint). Both answer the same two questions, so every metric —
// perplexity by position, passkey, the RULER-style tasks, golden sets — is
// written once:
//  - perplexity over windows of a token stream (see perplexity.h);
//  - retrieval: for each prompt, the greedy continuation and the log-probability
//    of each candidate answer right after the prompt (teacher-forced).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ropescale/eval/endpoint.h"
#include "ropescale/eval/perplexity.h"
#include "ropescale/model/tokenizer.h"

namespace ropescale {

// A prompt whose continuation is checked.
struct RetrievalPrompt {
  std::vector<int> ids;                   // the prompt, BOS first (the target's tokenizer)
  std::vector<std::vector<int>> answers;  // candidates scored right after the prompt
};

struct RetrievalOutcome {
  std::string generated;                // the greedy continuation (up to `generate` tokens, stops at EOS)
  std::vector<double> answer_logprobs;  // log p(answer | prompt), summed over its tokens, per answer
};

class EvalTarget {
 public:
  virtual ~EvalTarget() = default;
  // The tokenizer prompts are built with (the server's, for an endpoint).
  virtual const Tokenizer& tokenizer() const = 0;
  // "path" or "URL (served model)".
  virtual std::string describe() const = 0;
  virtual bool remote() const = 0;
  // Perplexity by context (ctx-major, as evaluate_perplexity). `stream` is in this
  // target's tokens; an endpoint puts its BOS before every window.
  virtual std::vector<PerplexityResult> perplexity(std::span<const int> stream, const std::vector<RopeSetting>& methods,
                                                   const PerplexityOptions& options,
                                                   const EvalProgress& progress = {}) const = 0;
  // Outcomes [method][prompt]. `progress` counts prompt tokens.
  virtual std::vector<std::vector<RetrievalOutcome>> retrieve(const std::vector<RopeSetting>& methods,
                                                              const std::vector<const RetrievalPrompt*>& prompts,
                                                              int generate, const EvalProgress& progress = {}) const = 0;
};

// The runtime: one session per method, each prompt prefilled once, the greedy
// continuation, then the cache rewound to the prompt's end for each answer.
class LocalTarget : public EvalTarget {
 public:
  LocalTarget(const LlamaModel& model, const Tokenizer& tok, RunOptions run) : model_(model), tok_(tok), run_(run) {}
  const Tokenizer& tokenizer() const override { return tok_; }
  std::string describe() const override { return model_.path; }
  bool remote() const override { return false; }
  std::vector<PerplexityResult> perplexity(std::span<const int> stream, const std::vector<RopeSetting>& methods,
                                           const PerplexityOptions& options, const EvalProgress& progress) const override;
  std::vector<std::vector<RetrievalOutcome>> retrieve(const std::vector<RopeSetting>& methods,
                                                      const std::vector<const RetrievalPrompt*>& prompts, int generate,
                                                      const EvalProgress& progress) const override;

 private:
  const LlamaModel& model_;
  const Tokenizer& tok_;
  RunOptions run_;
};

// A served model: requests run `concurrency` at a time; prompts travel as text
// (the server's /detokenize of their ids) and every count is checked.
class EndpointTarget : public EvalTarget {
 public:
  EndpointTarget(const Endpoint& e, int vocab_size) : e_(e), tok_(e, vocab_size) {}
  const Tokenizer& tokenizer() const override { return tok_; }
  std::string describe() const override { return e_.options().url + " (" + e_.model() + ")"; }
  bool remote() const override { return true; }
  std::vector<PerplexityResult> perplexity(std::span<const int> stream, const std::vector<RopeSetting>& methods,
                                           const PerplexityOptions& options, const EvalProgress& progress) const override;
  std::vector<std::vector<RetrievalOutcome>> retrieve(const std::vector<RopeSetting>& methods,
                                                      const std::vector<const RetrievalPrompt*>& prompts, int generate,
                                                      const EvalProgress& progress) const override;
  const Endpoint& endpoint() const { return e_; }

 private:
  const Endpoint& e_;
  EndpointTokenizer tok_;
};

}  // namespace ropescale
