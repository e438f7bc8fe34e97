// Effective context length (RULER's notion, relative form): the longest tested
// length up to which a score stays within a threshold of its value at the
// trained length — "the context the model really uses" against the one it
// advertises. Scores are per length (e.g. a task's accuracy over depths and
// trials, or its needle NLL, where lower is better).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ropescale {

struct LengthScore {
  int64_t length = 0;
  double score = 0;
};

struct EffectiveContextRule {
  double threshold = 0.1;         // allowed drop (accuracy, 0 … 1) or rise (NLL, nats per token)
  bool higher_is_better = true;   // accuracy: true; NLL: false
  // A score worse than this at the reference length means the model does not do the task at all,
  // so there is no effective length: the least accuracy (0.5), or the largest needle NLL (the NLL of
  // a uniform guess over the vocabulary, ln V; 0 = no bound).
  double reference_bound = 0.5;
};

struct EffectiveContext {
  int64_t reference_length = 0;  // the longest tested length ≤ trained (else the shortest tested)
  double reference = 0;          // the score there
  int64_t effective = 0;         // 0 = none (see why)
  std::string why;               // when none: why not
};

// Lengths need not be sorted; each length once. Walks up from the reference
// length and stops at the first length whose score leaves the band.
EffectiveContext effective_context(std::vector<LengthScore> points, int64_t trained, const EffectiveContextRule& rule);

}  // namespace ropescale
