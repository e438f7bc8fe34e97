// Passkey retrieval (needle in a haystack), the classic prompt of Mohtashami &
// Jaggi (2023) used by the YaRN and LongRoPE papers:
//
//   There is an important info hidden inside a lot of irrelevant text. Find it
//   and memorize it. I will quiz you about the important information there.
//   <filler> The pass key is 68217. Remember it. 68217 is the pass key. <filler>
//   What is the pass key? The pass key is
//
// Filler is a built-in sentence group repeated (whole sentences: a prompt is at
// most one sentence short of its length), or the text of any file (exact length).
// Each prompt is scored two ways: exact greedy retrieval (the generated digits
// equal the key), and the rank of the true key by log-probability among
// random alternative keys of the same length — a graded signal for models too
// small to recite. Every method sees the same prompts and keys.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ropescale/eval/eval_target.h"
#include "ropescale/model/tokenizer.h"

namespace ropescale {

// The prompt's fixed texts (training generates documents in the same form).
const char* passkey_intro();
const std::vector<std::string>& passkey_filler_sentences();
std::string passkey_needle(const std::string& key);
const char* passkey_question();  // "What is the pass key? The pass key is"
// A random key of `digits` digits (no leading zero).
std::string random_passkey(std::mt19937_64& rng, int digits = 5);

struct PasskeyOptions {
  std::vector<int64_t> lengths;     // prompt lengths in tokens
  std::vector<double> depths;       // needle position as a fraction of the filler, 0 … 1
  int trials = 2;                   // prompts (keys) per length × depth
  uint64_t seed = 1;
  int alternatives = 9;             // random keys the true one is ranked against
  int digits = 5;
  std::string haystack;             // filler text; empty = the built-in filler
  RunOptions run;
};

// ids: the prompt, ending at "The pass key is"; answers: [0] the true key's tokens, then each alternative's.
struct PasskeyPrompt : RetrievalPrompt {
  int64_t length = 0;       // the grid's length; ids.size() ≤ length (whole filler sentences)
  double depth = 0;
  int trial = 0;
  std::string key;
  std::vector<std::string> alternatives;
  int64_t needle_at = 0;                 // token index where the needle starts
};

// The prompts of the grid, identical for every method. Throws
// std::invalid_argument when a length cannot hold the fixed parts.
std::vector<PasskeyPrompt> build_passkey_prompts(const Tokenizer& tok, const PasskeyOptions& options);

struct PasskeyTrial {
  std::string method;
  int64_t length = 0;
  double depth = 0;
  int trial = 0;
  std::string key;
  std::string generated;   // the greedy continuation, as text
  bool exact = false;      // its leading digits equal the key
  int rank = 0;            // 1 = the true key is the most likely of 1 + alternatives
  double key_logprob = 0;  // log p(key | prompt), summed over its tokens
  int key_tokens = 0;      // tokens of the key: the needle NLL is −key_logprob / key_tokens
};

// Whether a greedy continuation retrieves `key`: its first digits (after spaces) are the key.
bool passkey_exact(const std::string& generated, const std::string& key);
// Fills rank, key_logprob and key_tokens from log p(answer | prompt) of the key (first) and
// each alternative, given the prompt's answers (token lists, key first).
void rank_passkey_answers(PasskeyTrial& t, const std::vector<double>& answer_logprobs,
                          const std::vector<std::vector<int>>& answers);
// Tokens greedy retrieval generates for `prompts`: the longest answer + 2.
int passkey_generate_tokens(const std::vector<PasskeyPrompt>& prompts);

// Every method on every prompt (method-major), on the runtime or an endpoint.
// `progress` counts prompt tokens.
std::vector<PasskeyTrial> evaluate_passkey(const EvalTarget& target, const std::vector<RopeSetting>& methods,
                                           const std::vector<PasskeyPrompt>& prompts, const EvalProgress& progress = {});

struct PasskeyCell {
  std::string method;
  int64_t length = 0;
  double depth = 0;
  int trials = 0;
  int exact = 0;            // prompts retrieved exactly
  double mean_rank = 0;
  double rank_score = 0;    // mean of 1 − (rank − 1) / alternatives: 1 = always first, 0.5 ≈ chance
  double needle_nll = 0;    // mean over trials of the key's NLL per token (LongRoPE2's needle perplexity, in nats)
};
// Aggregates by (method, length, depth), in first-seen order.
std::vector<PasskeyCell> passkey_cells(const std::vector<PasskeyTrial>& trials, int alternatives);

}  // namespace ropescale
