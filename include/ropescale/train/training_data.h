// Training data: text files as token streams (with a held-out tail), and a
// generator of synthetic long-range documents — passkey records in the form
// `eval passkey` asks them, and key–value recall — mixed into the text so a
// small model learns to retrieve across its whole window.
//
// Every sequence is a pure function of (seed, step, index): training is
// deterministic and a resumed run draws exactly the sequences it would have.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ropescale/model/tokenizer.h"

namespace ropescale {

struct TrainingCorpus {
  std::vector<int> train, valid;  // token streams; each file starts with BOS
};

// Tokenizes each text; the last `valid_fraction` of each goes to `valid`.
TrainingCorpus build_corpus(const Tokenizer& tok, const std::vector<std::string>& texts, double valid_fraction = 0.02);

struct SyntheticMix {
  double passkey = 0.25;    // share of sequences that are passkey documents
  double key_value = 0.25;  // share that are key–value recall documents (several queries each)
  double repeat = 0.0;      // share that are a string of distinct characters repeated (pure copying)
  double copy_gap = 0.5;    // share of those copy documents that put a window of text before each copy
  double recall = 0.0;      // share that are dense name–code records recalled many times (no filler)
};

enum class SequenceKind { Text, Passkey, KeyValue, Repeat, Recall };

// `length` tokens for (seed, step, index): a window of `stream`, or a
// synthetic document (filler from `stream` or the built-in passkey filler).
std::vector<int> training_sequence(const Tokenizer& tok, const std::vector<int>& stream, int64_t length,
                                   const SyntheticMix& mix, uint64_t seed, int64_t step, int index,
                                   SequenceKind* kind = nullptr);

// One synthetic document of exactly `length` tokens (BOS first), ending with
// the answer: "… What is the pass key? The pass key is 68217." or key–value
// records followed by queries "What is the code for Anna? The code for Anna is
// 48213." (up to four), or "Keys: " and 6–40 distinct letters and digits
// repeated to the end (pure copying: "Keys: x7Kq2Bx7Kq2Bx7…"; with probability
// `copy_gap` each copy follows a window of text and " Again: ", so copies reach
// across most of the window), or "Anna: 48213. Ben: 90127. …" filling half the
// document and "Recall: " with those records again at random to the end.
// Text before the records is filled from `stream`.
// Empty when `length` cannot hold one (training then uses text).
std::vector<int> synthetic_document(const Tokenizer& tok, const std::vector<int>& stream, int64_t length,
                                    SequenceKind kind, uint64_t seed, double copy_gap = 0.5);

}  // namespace ropescale
