// RopeSpec: everything needed to compute rotary inverse frequencies and the
// attention factor for one attention layer. Pure data; no I/O.
//
// Notation follows docs/rope-reference.md §0:
//   d  = rotary_dim (rotated channels, even), j = 0 … d/2−1 pair index,
//   b  = theta (rope_theta / freq_base), s = factor, L = original_max_position.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ropescale {

// The scaling families. Names (to_string/parse) are the Hugging Face `rope_type`
// strings where HF has one; `ntk` and `dynamic_yarn` are ropescale's own.
enum class RopeType {
  Default,      // plain RoPE (HF "default"; ggml "none")
  Linear,       // Position Interpolation: inv / s
  Ntk,          // NTK-aware fixed base change: b' = b·s^(d/(d−2))
  Dynamic,      // dynamic NTK (HF "dynamic"): base follows the current length
  Yarn,         // NTK-by-parts ramp + attention temperature
  DynamicYarn,  // YaRN whose factor follows the current length: s = max(1, len/L)
  LongRope,     // per-pair short/long divisors (Phi-3 "longrope", alias "su")
  Llama3,       // Llama 3.1 low/high frequency bands with smoothing
};

// Which channels form a rotation pair.
enum class PairLayout {
  HalfSplit,    // NeoX / HF rotate_half: pair j = channels (j, j + d/2)
  Interleaved,  // GPT-J / Meta / ggml NORMAL: pair j = channels (2j, 2j + 1)
};

// Whose arithmetic to reproduce where the reference implementations differ
// (rope-reference.md §2.6).
enum class Convention {
  HF,    // Hugging Face transformers (default; the numerical reference)
  GGML,  // llama.cpp/ggml: ramp denominator max(0.001, high−low), built-in YaRN
         // magnitude 1+0.1·ln(s) even for s<1, corr dims always floor/ceil
};

// Largest rotary dimension accepted (real models rotate 2 to 512 channels).
constexpr int kMaxRotaryDim = 1 << 16;
// Largest scaling factor accepted; beyond it a setting is rejected as absurd.
constexpr double kMaxFactor = 1e6;

struct RopeSpec {
  RopeType type = RopeType::Default;
  double theta = 10000.0;      // b
  int head_dim = 0;            // channels per head
  int rotary_dim = 0;          // d: rotated channels (even, ≤ head_dim)
  PairLayout layout = PairLayout::HalfSplit;
  Convention convention = Convention::HF;

  double factor = 1.0;                   // s (linear, ntk, dynamic, yarn, longrope, llama3)
  int64_t original_max_position = 0;     // L (yarn, dynamic_yarn, longrope, llama3)
  int64_t max_position = 0;              // max_position_embeddings (dynamic NTK uses it as L)

  // YaRN
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  bool truncate = true;                      // floor/ceil the correction range
  std::optional<double> attention_factor;    // explicit; wins over mscale (yarn, longrope)
  std::optional<double> mscale;              // DeepSeek-style magnitude pair
  std::optional<double> mscale_all_dim;

  // LongRoPE: per-pair divisors, length d/2 each
  std::vector<double> short_factor;
  std::vector<double> long_factor;
  // LongRoPE's attention factor per regime (vLLM's Phi3LongRoPE and HF's PhiMoE keys): within L
  // short_mscale, beyond it long_mscale; each defaults to the attention factor rule.
  std::optional<double> short_mscale;
  std::optional<double> long_mscale;

  // Llama 3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;

  // Extra per-pair divisors applied on top of any type (ggml `freq_factors`,
  // GGUF tensor rope_freqs.weight). Empty = none.
  std::vector<double> freq_divisors;

  int pairs() const { return rotary_dim / 2; }
  // The frequencies follow the current sequence length (the type's registry row says).
  bool is_dynamic() const;
#if __cplusplus >= 202002L  // the CUDA sources are C++17
  bool operator==(const RopeSpec&) const = default;
#endif
};

// Names and aliases come from the registry (rope_types.h): "none" → default,
// "su" → longrope, "ntk-aware"/"ntk_aware" → ntk, "dynamic-yarn"/"yarn_dynamic" → dynamic_yarn.
std::string_view to_string(RopeType t);
std::optional<RopeType> parse_rope_type(std::string_view name);
std::string_view to_string(PairLayout l);
std::string_view to_string(Convention c);
std::optional<PairLayout> parse_pair_layout(std::string_view name);
std::optional<Convention> parse_convention(std::string_view name);

// The one rule for the RoPE base, used by the config reader, `check` and
// validate(): "" when usable, else what the value must be ("must be …"). θ ≤ 1 makes the frequencies grow
// (or stay constant) with the pair index, which no model is trained with.
std::string theta_problem(double theta);
// The one rule for a scaling factor: finite, > 0 and ≤ kMaxFactor ("" or "must be …"/"is absurd …").
std::string factor_problem(double factor);
// The one rule for a per-pair list (LongRoPE factors, freq divisors): `pairs`
// finite numbers > 0. `name` names the list in the message.
std::string pair_list_problem(const std::vector<double>& list, int pairs, std::string_view name);

// Structural validation of a spec (not of a config file): the common fields,
// then the type's own rules from its registry row. Returns an empty string
// when usable, else a sentence naming the field and value at fault.
std::string validate(const RopeSpec& spec);

}  // namespace ropescale
