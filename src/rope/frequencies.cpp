// Formulas: ../shared/docs/rope-reference.md §1.2 (HF) and §2.1 (ggml).
#include "ropescale/rope/frequencies.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace ropescale {

namespace {

// Default inverse frequencies: inv[j] = 1 / b^(2j/d).
std::vector<double> default_inv_freq(double theta, int d) {
  std::vector<double> inv(d / 2);
  for (int j = 0; j < d / 2; ++j) inv[j] = 1.0 / std::pow(theta, (2.0 * j) / d);
  return inv;
}

// YaRN / NTK-by-parts blend (HF _compute_yarn_parameters; ggml rope_yarn).
// Fills inv_freq and returns the attention factor.
double yarn_frequencies(const RopeSpec& spec, double s, std::vector<double>& inv) {
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

}  // namespace

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

  switch (spec.type) {
    case RopeType::Default:
      out.inv_freq = default_inv_freq(spec.theta, d);
      out.effective_factor = 1.0;
      break;

    case RopeType::Linear:  // Position Interpolation: inv / s
      out.inv_freq = default_inv_freq(spec.theta, d);
      for (double& x : out.inv_freq) x /= spec.factor;
      break;

    case RopeType::Ntk:  // bloc97: b' = b·s^(d/(d−2))
      out.effective_theta = ntk_theta(spec.theta, spec.factor, d);
      out.inv_freq = default_inv_freq(out.effective_theta, d);
      break;

    case RopeType::Dynamic:  // HF: seq = max(seq_len, Lm); equals default at seq ≤ Lm
      out.effective_theta = dynamic_ntk_theta(spec, seq_len.value_or(spec.max_position));
      out.inv_freq = default_inv_freq(out.effective_theta, d);
      break;

    case RopeType::Yarn:
      out.attention_factor = yarn_frequencies(spec, spec.factor, out.inv_freq);
      break;

    case RopeType::DynamicYarn: {  // YaRN paper §3.3: s = max(1, l'/L)
      const double s =
          std::max(1.0, static_cast<double>(seq_len.value_or(0)) / spec.original_max_position);
      out.effective_factor = s;
      out.attention_factor = yarn_frequencies(spec, s, out.inv_freq);
      break;
    }

    case RopeType::LongRope: {
      const double L = static_cast<double>(spec.original_max_position);
      out.uses_long_factors = seq_len && *seq_len > spec.original_max_position;
      const auto& ext = out.uses_long_factors ? spec.long_factor : spec.short_factor;
      out.inv_freq = default_inv_freq(spec.theta, d);
      for (int j = 0; j < d / 2; ++j) out.inv_freq[j] /= ext[j];
      out.attention_factor = spec.attention_factor.value_or(
          spec.factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(spec.factor) / std::log(L)));
      break;
    }

    case RopeType::Llama3: {
      const double L = static_cast<double>(spec.original_max_position);
      const double low_wavelen = L / spec.low_freq_factor;
      const double high_wavelen = L / spec.high_freq_factor;
      const double band = spec.high_freq_factor - spec.low_freq_factor;
      out.inv_freq = default_inv_freq(spec.theta, d);
      for (double& inv : out.inv_freq) {
        const double wavelen = 2.0 * std::numbers::pi / inv;
        if (wavelen < high_wavelen) continue;  // high frequency: unchanged
        if (wavelen > low_wavelen) {           // low frequency: interpolate fully
          inv /= spec.factor;
          continue;
        }
        // Medium band (boundaries included, as HF's mask). When low == high the
        // band is a single wavelength: HF's 0/0 is masked out; vLLM uses smooth 0.
        const double smooth = band != 0.0 ? (L / wavelen - spec.low_freq_factor) / band : 0.0;
        inv = (1.0 - smooth) * inv / spec.factor + smooth * inv;
      }
      break;
    }
  }

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
