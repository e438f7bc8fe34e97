#include "ropescale/rope/rope_spec.h"

#include <cmath>
#include <string>

namespace ropescale {

std::string_view to_string(RopeType t) {
  switch (t) {
    case RopeType::Default: return "default";
    case RopeType::Linear: return "linear";
    case RopeType::Ntk: return "ntk";
    case RopeType::Dynamic: return "dynamic";
    case RopeType::Yarn: return "yarn";
    case RopeType::DynamicYarn: return "dynamic_yarn";
    case RopeType::LongRope: return "longrope";
    case RopeType::Llama3: return "llama3";
  }
  return "?";
}

std::string_view to_string(PairLayout l) {
  return l == PairLayout::HalfSplit ? "half-split" : "interleaved";
}

std::string_view to_string(Convention c) { return c == Convention::HF ? "hf" : "ggml"; }

std::optional<RopeType> parse_rope_type(std::string_view n) {
  if (n == "default" || n == "none") return RopeType::Default;
  if (n == "linear") return RopeType::Linear;
  if (n == "ntk" || n == "ntk-aware" || n == "ntk_aware") return RopeType::Ntk;
  if (n == "dynamic" || n == "dynamic_ntk" || n == "dynamic-ntk") return RopeType::Dynamic;
  if (n == "yarn") return RopeType::Yarn;
  if (n == "dynamic_yarn" || n == "dynamic-yarn" || n == "yarn_dynamic") return RopeType::DynamicYarn;
  if (n == "longrope" || n == "su") return RopeType::LongRope;
  if (n == "llama3") return RopeType::Llama3;
  return std::nullopt;
}

std::optional<PairLayout> parse_pair_layout(std::string_view n) {
  if (n == "half-split" || n == "half_split" || n == "neox") return PairLayout::HalfSplit;
  if (n == "interleaved" || n == "gptj" || n == "gpt-j" || n == "normal") return PairLayout::Interleaved;
  return std::nullopt;
}

std::optional<Convention> parse_convention(std::string_view n) {
  if (n == "hf") return Convention::HF;
  if (n == "ggml" || n == "llama.cpp") return Convention::GGML;
  return std::nullopt;
}

namespace {
bool positive_finite(double x) { return std::isfinite(x) && x > 0; }

std::string check_list(const std::vector<double>& v, int pairs, const char* name) {
  if (static_cast<int>(v.size()) != pairs)
    return std::string(name) + " has " + std::to_string(v.size()) + " entries; rotary_dim/2 = " +
           std::to_string(pairs) + " are needed";
  for (size_t i = 0; i < v.size(); ++i)
    if (!positive_finite(v[i]))
      return std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(v[i]) +
             " must be a finite number > 0";
  return {};
}
}  // namespace

std::string validate(const RopeSpec& s) {
  if (s.rotary_dim < 2 || s.rotary_dim % 2 != 0)
    return "rotary_dim = " + std::to_string(s.rotary_dim) + " must be an even number >= 2";
  if (s.rotary_dim > kMaxRotaryDim)  // no model rotates more; bounds the memory a file can make us allocate
    return "rotary_dim = " + std::to_string(s.rotary_dim) + " is absurd (more than " + std::to_string(kMaxRotaryDim) + ")";
  if (s.head_dim > 0 && s.rotary_dim > s.head_dim)
    return "rotary_dim = " + std::to_string(s.rotary_dim) + " exceeds head_dim = " + std::to_string(s.head_dim);
  if (!positive_finite(s.theta) || s.theta == 1.0)
    return "rope_theta = " + std::to_string(s.theta) + " must be a finite number > 0 and != 1";
  if (!positive_finite(s.factor)) return "factor = " + std::to_string(s.factor) + " must be a finite number > 0";
  if (s.attention_factor && !(std::isfinite(*s.attention_factor) && *s.attention_factor >= 0))
    return "attention_factor = " + std::to_string(*s.attention_factor) + " must be a finite number >= 0";
  if (!s.freq_divisors.empty()) {
    if (auto e = check_list(s.freq_divisors, s.pairs(), "freq_divisors"); !e.empty()) return e;
  }
  switch (s.type) {
    case RopeType::Default:
    case RopeType::Linear:
      break;
    case RopeType::Ntk:
      if (s.rotary_dim < 4) return "ntk needs rotary_dim >= 4 (the exponent is d/(d-2))";
      break;
    case RopeType::Dynamic:
      if (s.rotary_dim < 4) return "dynamic needs rotary_dim >= 4 (the exponent is d/(d-2))";
      if (s.max_position <= 0)
        return "dynamic needs max_position_embeddings > 0 (got " + std::to_string(s.max_position) + ")";
      break;
    case RopeType::Yarn:
    case RopeType::DynamicYarn:
      if (s.original_max_position <= 0)
        return std::string(to_string(s.type)) + " needs original_max_position_embeddings > 0 (got " +
               std::to_string(s.original_max_position) + ")";
      if (!positive_finite(s.beta_fast) || !positive_finite(s.beta_slow))
        return "beta_fast/beta_slow must be finite numbers > 0";
      if (s.mscale && !std::isfinite(*s.mscale)) return "mscale must be finite";
      if (s.mscale_all_dim && !std::isfinite(*s.mscale_all_dim)) return "mscale_all_dim must be finite";
      break;
    case RopeType::LongRope:
      if (s.original_max_position <= 1)
        return "longrope needs original_max_position_embeddings > 1 (got " +
               std::to_string(s.original_max_position) + ")";
      if (auto e = check_list(s.short_factor, s.pairs(), "short_factor"); !e.empty()) return e;
      if (auto e = check_list(s.long_factor, s.pairs(), "long_factor"); !e.empty()) return e;
      break;
    case RopeType::Llama3:
      if (s.original_max_position <= 0)
        return "llama3 needs original_max_position_embeddings > 0 (got " +
               std::to_string(s.original_max_position) + ")";
      if (!positive_finite(s.low_freq_factor) || !positive_finite(s.high_freq_factor))
        return "low_freq_factor/high_freq_factor must be finite numbers > 0";
      break;
  }
  return {};
}

}  // namespace ropescale
