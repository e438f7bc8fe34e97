#include "ropescale/rope/rope_spec.h"

#include <cmath>
#include <string>

#include "ropescale/rope/rope_types.h"

namespace ropescale {

std::string_view to_string(PairLayout l) {
  return l == PairLayout::HalfSplit ? "half-split" : "interleaved";
}

std::string_view to_string(Convention c) { return c == Convention::HF ? "hf" : "ggml"; }

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
std::string number_text(double x) {
  std::string s = std::to_string(x);
  return std::isfinite(x) ? s : (std::isnan(x) ? "nan" : (x > 0 ? "inf" : "-inf"));
}
}  // namespace

std::string theta_problem(double theta) {
  if (std::isfinite(theta) && theta > 1) return {};
  return "must be a finite number > 1";
}

std::string factor_problem(double f) {
  if (!(std::isfinite(f) && f > 0)) return "must be a finite number > 0";
  if (f > kMaxFactor) return "is absurd (above 1e6)";
  return {};
}

std::string pair_list_problem(const std::vector<double>& v, int pairs, std::string_view name) {
  if (static_cast<int>(v.size()) != pairs)
    return std::string(name) + " has " + std::to_string(v.size()) + " entries; rotary_dim/2 = " +
           std::to_string(pairs) + " are needed";
  for (size_t i = 0; i < v.size(); ++i)
    if (!(std::isfinite(v[i]) && v[i] > 0))
      return std::string(name) + "[" + std::to_string(i) + "] = " + number_text(v[i]) + " must be a finite number > 0";
  return {};
}

std::string validate(const RopeSpec& s) {
  if (s.rotary_dim < 2 || s.rotary_dim % 2 != 0)
    return "rotary_dim = " + std::to_string(s.rotary_dim) + " must be an even number >= 2";
  if (s.rotary_dim > kMaxRotaryDim)  // no model rotates more; bounds the memory a file can make us allocate
    return "rotary_dim = " + std::to_string(s.rotary_dim) + " is absurd (more than " + std::to_string(kMaxRotaryDim) + ")";
  if (s.head_dim > 0 && s.rotary_dim > s.head_dim)
    return "rotary_dim = " + std::to_string(s.rotary_dim) + " exceeds head_dim = " + std::to_string(s.head_dim);
  if (auto e = theta_problem(s.theta); !e.empty()) return "rope_theta = " + number_text(s.theta) + " " + e;
  if (auto e = factor_problem(s.factor); !e.empty()) return "factor = " + number_text(s.factor) + " " + e;
  if (s.attention_factor && !(std::isfinite(*s.attention_factor) && *s.attention_factor >= 0))
    return "attention_factor = " + number_text(*s.attention_factor) + " must be a finite number >= 0";
  if (!s.freq_divisors.empty()) {
    if (auto e = pair_list_problem(s.freq_divisors, s.pairs(), "freq_divisors"); !e.empty()) return e;
  }
  return rope_type_info(s.type).validate(s);
}

}  // namespace ropescale
