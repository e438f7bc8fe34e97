// YaRN calibration: search YaRN's ramp — the critical dimension where pairs stop
// extrapolating (via beta_fast) and where they are fully interpolated (via
// beta_slow) — and its attention factor, for one model at one target length,
// on the user's text. LongRoPE2 (Shang et al. 2025) moves only YaRN's boundary
// to the searched critical dimension ("YaRN-rcd") and lifts LLaMA3-8B RULER@128k
// from 49.4 to 71.5; the theoretical dimension is ⌈(d/2)·log_θ(L/2π)⌉ and the
// searched one a few pairs lower.
//
// With truncation (HF's default) only whole pairs matter, so the search is over
// the ramp's pair bounds (low, high), each turned into the beta that lands on
// it, then the attention factor around YaRN's 0.1·ln(s) + 1, then the bounds'
// neighbours again at the chosen factor: deterministic, a few hundred fitness
// evaluations at most. The fitness is a callable (mean NLL at the target length
// on calibration windows, in the CLI), so a synthetic one tests the search.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ropescale/rope/rope_spec.h"

namespace ropescale {

struct YarnCandidate {
  int low = 0, high = 0;          // the ramp's pair bounds: pairs ≤ low keep their frequency, ≥ high are divided by s
  double beta_fast = 0, beta_slow = 0;
  double attention_factor = 1;
  double fitness = 0;             // lower is better (NLL, nats per token)
};

// The betas whose truncated correction range is exactly [low, high] for `spec`
// (its theta, rotary_dim and original length): beta = L / (2π · θ^(2·dim/d)) at
// dim = low + ¼ and high − ¼. Needs 0 ≤ low < high ≤ d/2.
std::pair<double, double> yarn_betas_for_range(const RopeSpec& spec, int low, int high);

// ⌈(d/2)·log_θ(L/2π)⌉: the pair whose period equals the trained length (LongRoPE2's d_tcd).
int theoretical_critical_pair(const RopeSpec& spec);

struct YarnSearchOptions {
  int max_evals = 400;                   // stop after this many fitness evaluations
  double max_seconds = 180;              // or after this long (the best so far is kept)
  std::vector<double> attention_scales = {0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2};  // × YaRN's default factor
};

struct YarnSearchResult {
  YarnCandidate best;
  YarnCandidate yarn_default;         // YaRN as published (beta 32/1, 0.1·ln s + 1), evaluated first
  std::vector<YarnCandidate> history; // every evaluation, in order
  int evals = 0;
  double seconds = 0;
  bool stopped_by_budget = false;
};

// `base`: a valid YaRN spec (factor, original length, theta, rotary_dim); the search changes
// only beta_fast, beta_slow and attention_factor. `progress(evals, max_evals, best)` after each.
using YarnFitness = std::function<double(const RopeSpec&)>;
YarnSearchResult search_yarn(const RopeSpec& base, const YarnFitness& fitness, const YarnSearchOptions& options = {},
                             const std::function<void(int, int, const YarnCandidate&)>& progress = {});

}  // namespace ropescale
