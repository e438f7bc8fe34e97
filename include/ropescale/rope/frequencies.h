// Inverse frequencies and attention factor for every scaling family.
// Computed in double from the published formulas (rope-reference.md §1.2, §2.1).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ropescale/rope/rope_spec.h"

namespace ropescale {

struct RopeFrequencies {
  std::vector<double> inv_freq;    // one per pair j = 0 … d/2−1, pair order
  double attention_factor = 1.0;   // multiplies both cos and sin
  double effective_theta = 0.0;    // base actually used (differs for ntk / dynamic)
  double effective_factor = 1.0;   // factor actually used (differs for dynamic_yarn, longrope)
  bool uses_long_factors = false;  // longrope: long list selected
};

// `seq_len` is the current sequence length (max position + 1) for the
// length-dependent methods (dynamic, dynamic_yarn, longrope). std::nullopt means
// "at initialisation", as HF's init functions with seq_len=None.
// Throws std::invalid_argument when validate(spec) fails.
RopeFrequencies compute_frequencies(const RopeSpec& spec,
                                    std::optional<int64_t> seq_len = std::nullopt);

// Plain RoPE: inv[j] = 1 / b^(2j/d), j = 0 … d/2−1.
std::vector<double> default_inv_freq(double theta, int rotary_dim);

// YaRN / NTK-by-parts blend at factor `s` (HF _compute_yarn_parameters; ggml
// rope_yarn): fills inv and returns the attention factor in the spec's convention.
double yarn_blend(const RopeSpec& spec, double s, std::vector<double>& inv);

// get_mscale (DeepSeek/YaRN): 1 for s ≤ 1, else 0.1·m·ln(s) + 1.
double yarn_mscale(double s, double m = 1.0);

// YaRN correction dimension for r rotations over L positions:
//   d · ln(L / (r·2π)) / (2 · ln b)
double yarn_correction_dim(double r, int rotary_dim, double theta, int64_t original_max_position);

struct YarnRange {
  double low = 0;   // pairs j ≤ low keep their frequency (extrapolate)
  double high = 0;  // pairs j ≥ high are divided by s (interpolate)
};
// Correction range after truncation (floor/ceil) and clamping to [0, d−1].
YarnRange yarn_correction_range(const RopeSpec& spec);

// The base dynamic NTK uses for a sequence of `seq_len` tokens (HF formula):
//   b' = b · ((s·seq/Lm) − (s−1))^(d/(d−2)),  seq = max(seq_len, Lm).
double dynamic_ntk_theta(const RopeSpec& spec, int64_t seq_len);

// NTK-aware fixed base: b' = b · s^(d/(d−2)).
double ntk_theta(double theta, double factor, int rotary_dim);

// Per-pair divisor implied by a frequency set: default_inv[j] / inv[j].
// (What llama.cpp stores as rope_freqs / what a LongRoPE factor list is.)
std::vector<double> divisors_against_default(const RopeSpec& spec, const RopeFrequencies& f);

}  // namespace ropescale
