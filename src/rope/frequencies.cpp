// The shared pieces of the formulas (rope-reference.md §1.2 HF, §2.1 ggml);
// each type's own formula is in its registry row (rope_types.cpp).
#include "ropescale/rope/frequencies.h"

#include "ropescale/rope/rope_types.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace ropescale {

// Default inverse frequencies: inv[j] = 1 / b^(2j/d).
std::vector<double> default_inv_freq(double theta, int d) {
  std::vector<double> inv(d / 2);
  for (int j = 0; j < d / 2; ++j) inv[j] = 1.0 / std::pow(theta, (2.0 * j) / d);
  return inv;
}

// YaRN / NTK-by-parts blend (HF _compute_yarn_parameters; ggml rope_yarn).
// Fills inv_freq and returns the attention factor.
double yarn_blend(const RopeSpec& spec, double s, std::vector<double>& inv) {
  const int d = spec.rotary_dim;
  const YarnRange r = yarn_correction_range(spec);
  double low = r.low, high = r.high;
  double denom;
  if (spec.convention == Convention::GGML) {
    denom = std::max(0.001, high - low);
  } else {
    if (low == high) high += 0.001;  // HF: avoid a zero division only when equal
    denom = high - low;
  }
  inv.resize(d / 2);
  for (int j = 0; j < d / 2; ++j) {
    const double pos = std::pow(spec.theta, (2.0 * j) / d);
    const double inv_extrapolation = 1.0 / pos;
    const double inv_interpolation = 1.0 / (s * pos);
    const double ramp = std::clamp((j - low) / denom, 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;
    inv[j] = inv_interpolation * (1.0 - extrapolation_weight) + inv_extrapolation * extrapolation_weight;
  }

  if (spec.convention == Convention::GGML) {
    // ggml multiplies its attn_factor parameter by the built-in magnitude
    // 1 + 0.1·ln(1/freq_scale), for any freq_scale (so < 1 when s < 1).
    const double attn_param = spec.attention_factor.value_or(1.0);
    return attn_param * (1.0 + 0.1 * std::log(s));
  }
  if (spec.attention_factor) return *spec.attention_factor;
  if (spec.mscale && spec.mscale_all_dim && *spec.mscale != 0 && *spec.mscale_all_dim != 0)
    return yarn_mscale(s, *spec.mscale) / yarn_mscale(s, *spec.mscale_all_dim);
  return yarn_mscale(s);
}


double yarn_mscale(double s, double m) { return s <= 1.0 ? 1.0 : 0.1 * m * std::log(s) + 1.0; }

double yarn_correction_dim(double r, int d, double theta, int64_t L) {
  return d * std::log(static_cast<double>(L) / (r * 2.0 * std::numbers::pi)) / (2.0 * std::log(theta));
}

YarnRange yarn_correction_range(const RopeSpec& spec) {
  const int d = spec.rotary_dim;
  double low = yarn_correction_dim(spec.beta_fast, d, spec.theta, spec.original_max_position);
  double high = yarn_correction_dim(spec.beta_slow, d, spec.theta, spec.original_max_position);
  // ggml has no unrounded path: it always floors/ceils.
  if (spec.truncate || spec.convention == Convention::GGML) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  return {std::max(low, 0.0), std::min(high, static_cast<double>(d - 1))};
}

double ntk_theta(double theta, double factor, int d) {
  return theta * std::pow(factor, static_cast<double>(d) / (d - 2));
}

double dynamic_ntk_theta(const RopeSpec& spec, int64_t seq_len) {
  const double Lm = static_cast<double>(spec.max_position);
  const double seq = std::max(static_cast<double>(seq_len), Lm);
  const double s = spec.factor;
  const int d = spec.rotary_dim;
  return spec.theta * std::pow((s * seq / Lm) - (s - 1.0), static_cast<double>(d) / (d - 2));
}

RopeFrequencies compute_frequencies(const RopeSpec& spec, std::optional<int64_t> seq_len) {
  if (auto err = validate(spec); !err.empty()) throw std::invalid_argument(err);
  if (seq_len && *seq_len < 0) throw std::invalid_argument("seq_len must be >= 0");
  const int d = spec.rotary_dim;
  RopeFrequencies out;
  out.effective_theta = spec.theta;
  out.effective_factor = spec.factor;

  rope_type_info(spec.type).frequencies(spec, seq_len, out);

  if (!spec.freq_divisors.empty())
    for (int j = 0; j < d / 2; ++j) out.inv_freq[j] /= spec.freq_divisors[j];
  return out;
}

std::vector<double> divisors_against_default(const RopeSpec& spec, const RopeFrequencies& f) {
  auto base = default_inv_freq(spec.theta, spec.rotary_dim);
  std::vector<double> div(base.size());
  for (size_t j = 0; j < base.size(); ++j) div[j] = base[j] / f.inv_freq[j];
  return div;
}

}  // namespace ropescale
