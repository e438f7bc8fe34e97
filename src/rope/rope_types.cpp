// The rope-type registry: one row per scaling family, each with its formula.
// Formulas: docs/rope-reference.md §1.2 (HF) and §2.1 (ggml)
// in this repository; the papers are cited at each formula.
#include "ropescale/rope/rope_types.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

#include "ropescale/rope/frequencies.h"

namespace ropescale {

namespace {

bool positive_finite(double x) { return std::isfinite(x) && x > 0; }

std::string needs_original(const RopeSpec& s, int64_t at_least) {
  if (s.original_max_position >= at_least) return {};
  return std::string(rope_type_info(s.type).name) + " needs original_max_position_embeddings > " +
         std::to_string(at_least - 1) + " (got " + std::to_string(s.original_max_position) + ")";
}

// ---- default: plain RoPE, inv[j] = b^(−2j/d) ---------------------------------
std::string validate_nothing(const RopeSpec&) { return {}; }
void default_freqs(const RopeSpec& s, std::optional<int64_t>, RopeFrequencies& out) {
  out.inv_freq = default_inv_freq(s.theta, s.rotary_dim);
  out.effective_factor = 1.0;
}

// ---- linear: Position Interpolation (Chen et al. 2023), inv / s ----------------
void linear_freqs(const RopeSpec& s, std::optional<int64_t>, RopeFrequencies& out) {
  out.inv_freq = default_inv_freq(s.theta, s.rotary_dim);
  for (double& x : out.inv_freq) x /= s.factor;
}

// ---- ntk: NTK-aware base change (bloc97), b' = b·s^(d/(d−2)) -------------------
std::string validate_ntk_exponent(const RopeSpec& s) {
  if (s.rotary_dim < 4)
    return std::string(rope_type_info(s.type).name) + " needs rotary_dim >= 4 (the exponent is d/(d-2))";
  return {};
}
void ntk_freqs(const RopeSpec& s, std::optional<int64_t>, RopeFrequencies& out) {
  out.effective_theta = ntk_theta(s.theta, s.factor, s.rotary_dim);
  out.inv_freq = default_inv_freq(out.effective_theta, s.rotary_dim);
}

// ---- dynamic: dynamic NTK (HF), base follows seq = max(seq_len, Lm) ------------
std::string validate_dynamic(const RopeSpec& s) {
  if (auto e = validate_ntk_exponent(s); !e.empty()) return e;
  if (s.max_position <= 0)
    return "dynamic needs max_position_embeddings > 0 (got " + std::to_string(s.max_position) + ")";
  return {};
}
void dynamic_freqs(const RopeSpec& s, std::optional<int64_t> seq_len, RopeFrequencies& out) {
  out.effective_theta = dynamic_ntk_theta(s, seq_len.value_or(s.max_position));
  out.inv_freq = default_inv_freq(out.effective_theta, s.rotary_dim);
}

// ---- yarn: NTK-by-parts ramp + attention temperature (Peng et al. 2023) --------
std::string validate_yarn(const RopeSpec& s) {
  if (auto e = needs_original(s, 1); !e.empty()) return e;
  if (!positive_finite(s.beta_fast) || !positive_finite(s.beta_slow))
    return "beta_fast/beta_slow must be finite numbers > 0";
  if (s.mscale && !std::isfinite(*s.mscale)) return "mscale must be finite";
  if (s.mscale_all_dim && !std::isfinite(*s.mscale_all_dim)) return "mscale_all_dim must be finite";
  return {};
}
void yarn_freqs(const RopeSpec& s, std::optional<int64_t>, RopeFrequencies& out) {
  out.attention_factor = yarn_blend(s, s.factor, out.inv_freq);
}

// ---- dynamic_yarn: YaRN paper §3.3, s = max(1, l'/L) ---------------------------
void dynamic_yarn_freqs(const RopeSpec& s, std::optional<int64_t> seq_len, RopeFrequencies& out) {
  const double f = std::max(1.0, static_cast<double>(seq_len.value_or(0)) / s.original_max_position);
  out.effective_factor = f;
  out.attention_factor = yarn_blend(s, f, out.inv_freq);
}

// ---- longrope: per-pair divisors, short list within L, long beyond (Phi-3) -----
std::string validate_longrope(const RopeSpec& s) {
  if (auto e = needs_original(s, 2); !e.empty()) return e;
  if (auto e = pair_list_problem(s.short_factor, s.pairs(), "short_factor"); !e.empty()) return e;
  for (const auto& [name, v] : {std::pair{"short_mscale", s.short_mscale}, std::pair{"long_mscale", s.long_mscale}})
    if (v && !(std::isfinite(*v) && *v > 0)) return std::string(name) + " = " + std::to_string(*v) + " must be a finite number > 0";
  return pair_list_problem(s.long_factor, s.pairs(), "long_factor");
}
void longrope_freqs(const RopeSpec& s, std::optional<int64_t> seq_len, RopeFrequencies& out) {
  const double L = static_cast<double>(s.original_max_position);
  out.uses_long_factors = seq_len && *seq_len > s.original_max_position;
  const auto& ext = out.uses_long_factors ? s.long_factor : s.short_factor;
  out.inv_freq = default_inv_freq(s.theta, s.rotary_dim);
  for (int j = 0; j < s.pairs(); ++j) out.inv_freq[j] /= ext[j];
  const double rule =
      s.attention_factor.value_or(s.factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(s.factor) / std::log(L)));
  out.attention_factor = (out.uses_long_factors ? s.long_mscale : s.short_mscale).value_or(rule);
}

// ---- llama3: Llama 3.1 low/high frequency bands with smoothing ----------------
std::string validate_llama3(const RopeSpec& s) {
  if (auto e = needs_original(s, 1); !e.empty()) return e;
  if (!positive_finite(s.low_freq_factor) || !positive_finite(s.high_freq_factor))
    return "low_freq_factor/high_freq_factor must be finite numbers > 0";
  return {};
}
void llama3_freqs(const RopeSpec& s, std::optional<int64_t>, RopeFrequencies& out) {
  const double L = static_cast<double>(s.original_max_position);
  const double low_wavelen = L / s.low_freq_factor;
  const double high_wavelen = L / s.high_freq_factor;
  const double band = s.high_freq_factor - s.low_freq_factor;
  out.inv_freq = default_inv_freq(s.theta, s.rotary_dim);
  for (double& inv : out.inv_freq) {
    const double wavelen = 2.0 * std::numbers::pi / inv;
    if (wavelen < high_wavelen) continue;  // high frequency: unchanged
    if (wavelen > low_wavelen) {           // low frequency: interpolate fully
      inv /= s.factor;
      continue;
    }
    // Medium band (boundaries included, as HF's mask). When low == high the
    // band is a single wavelength: HF's 0/0 is masked out; vLLM uses smooth 0.
    const double smooth = band != 0.0 ? (L / wavelen - s.low_freq_factor) / band : 0.0;
    inv = (1.0 - smooth) * inv / s.factor + smooth * inv;
  }
}

// ---- parameters ----------------------------------------------------------------
using K = ParamKind;
using D = ParamDefault;
constexpr RopeParam kFactorRequired{"factor", K::Factor, &RopeSpec::factor, true};
constexpr RopeParam kOriginal{"original_max_position_embeddings", K::Length, &RopeSpec::original_max_position, true};
constexpr RopeParam kAttentionFactor{"attention_factor", K::OptionalNumber, &RopeSpec::attention_factor, false};

constexpr RopeParam kFactorOnly[] = {kFactorRequired};
// A `dynamic` shorthand without a factor means factor 1 (the base grows as (len/L)^(d/(d-2))).
constexpr RopeParam kDynamicParams[] = {{"factor", K::Factor, &RopeSpec::factor, true, D::Value, 1.0}};

#define ROPESCALE_YARN_TAIL                                                                  \
  {"beta_fast", K::Number, &RopeSpec::beta_fast, false, D::Value, 32.0, true},               \
      {"beta_slow", K::Number, &RopeSpec::beta_slow, false, D::Value, 1.0, true},            \
      kAttentionFactor, {"mscale", K::OptionalNumber, &RopeSpec::mscale, false},             \
      {"mscale_all_dim", K::OptionalNumber, &RopeSpec::mscale_all_dim, false},               \
      {"truncate", K::Flag, &RopeSpec::truncate, false, D::Value, 1.0}
constexpr RopeParam kYarnParams[] = {
    kOriginal, {"factor", K::Factor, &RopeSpec::factor, true, D::LengthRatio}, ROPESCALE_YARN_TAIL,
    {"finetuned", K::Informational, std::monostate{}, false}};
constexpr RopeParam kDynamicYarnParams[] = {
    kOriginal, {"factor", K::Factor, &RopeSpec::factor, false, D::LengthRatio}, ROPESCALE_YARN_TAIL};
#undef ROPESCALE_YARN_TAIL
constexpr RopeParam kLongRopeParams[] = {
    {"short_factor", K::PairList, &RopeSpec::short_factor, true},
    {"long_factor", K::PairList, &RopeSpec::long_factor, true},
    kOriginal,
    {"factor", K::Factor, &RopeSpec::factor, false, D::LengthRatio},
    kAttentionFactor,
    {"short_mscale", K::OptionalNumber, &RopeSpec::short_mscale, false},
    {"long_mscale", K::OptionalNumber, &RopeSpec::long_mscale, false}};
constexpr RopeParam kLlama3Params[] = {
    kOriginal, kFactorRequired,
    {"low_freq_factor", K::Number, &RopeSpec::low_freq_factor, true, D::Value, 1.0},
    {"high_freq_factor", K::Number, &RopeSpec::high_freq_factor, true, D::Value, 4.0}};

constexpr std::string_view kDefaultAliases[] = {"none"};
constexpr std::string_view kNtkAliases[] = {"ntk-aware", "ntk_aware"};
constexpr std::string_view kDynamicAliases[] = {"dynamic_ntk", "dynamic-ntk"};
constexpr std::string_view kDynamicYarnAliases[] = {"dynamic-yarn", "yarn_dynamic"};
constexpr std::string_view kLongRopeAliases[] = {"su"};

using E = EngineSupport;
using G = GgufEncoding;
using S = ShorthandArg;

// clang-format off
const RopeTypeInfo kRows[] = {
  {RopeType::Default, "default", kDefaultAliases, "none", "plain RoPE: inv[j] = b^(-2j/d)",
   true, {}, false, false, false, std::nullopt, S::None, true, "#111111",
   E::Exact, E::Exact, E::Exact, G::Plain, "none", validate_nothing, default_freqs},
  {RopeType::Linear, "linear", {}, "linear", "Position Interpolation: every frequency divided by the factor",
   true, kFactorOnly, false, false, true, RopeType::Dynamic, S::Factor, true, "#1f6fd1",
   E::Exact, E::Exact, E::Exact, G::ScalingKeys, "linear", validate_nothing, linear_freqs},
  {RopeType::Ntk, "ntk", kNtkAliases, "ntk", "NTK-aware: the base raised to b*s^(d/(d-2)) (ropescale's name; HF spells it as rope_theta)",
   false, kFactorOnly, false, false, true, RopeType::Dynamic, S::Factor, true, "#e07b00",
   E::Exact, E::Exact, E::Exact, G::FreqBase, "", validate_ntk_exponent, ntk_freqs},
  {RopeType::Dynamic, "dynamic", kDynamicAliases, "dynamic", "dynamic NTK: the base follows the current length past max_position_embeddings",
   true, kDynamicParams, false, true, false, std::nullopt, S::OptionalFactor, true, "#2a9d3a",
   E::Exact, E::Approximate, E::Approximate, G::NotExpressible, "", validate_dynamic, dynamic_freqs},
  {RopeType::Yarn, "yarn", {}, "yarn", "YaRN: NTK-by-parts ramp between beta_fast and beta_slow, attention temperature",
   true, kYarnParams, true, false, true, RopeType::DynamicYarn, S::Factor, true, "#d1263b",
   E::Exact, E::Exact, E::Exact, G::ScalingKeys, "yarn", validate_yarn, yarn_freqs},
  {RopeType::DynamicYarn, "dynamic_yarn", kDynamicYarnAliases, "dynamic_yarn", "YaRN whose factor follows the current length: s = max(1, len/L) (ropescale's)",
   false, kDynamicYarnParams, true, true, false, std::nullopt, S::OptionalFactor, true, "#8e44c9",
   E::Approximate, E::Approximate, E::Approximate, G::NotExpressible, "", validate_yarn, dynamic_yarn_freqs},
  {RopeType::LongRope, "longrope", kLongRopeAliases, "longrope", "LongRoPE: per-pair divisors, short list within L, long list beyond",
   true, kLongRopeParams, true, true, true, std::nullopt, S::File, false, "#8c564b",
   E::Exact, E::Approximate, E::Approximate, G::LongRopeFreqs, "", validate_longrope, longrope_freqs},
  {RopeType::Llama3, "llama3", {}, "llama3", "Llama 3.1: low frequencies divided by the factor, high kept, a smooth band between",
   true, kLlama3Params, true, false, true, std::nullopt, S::Factor, false, "#17a2b8",
   E::Exact, E::Exact, E::Exact, G::FreqsTensor, "", validate_llama3, llama3_freqs},
};
// clang-format on

}  // namespace

std::span<const RopeTypeInfo> rope_types() { return kRows; }

const RopeTypeInfo& rope_type_info(RopeType t) {
  for (const auto& r : kRows)
    if (r.type == t) return r;
  return kRows[0];  // unreachable: the registry test checks every enum value has a row
}

const RopeTypeInfo* find_rope_type(std::string_view name) {
  for (const auto& r : kRows) {
    if (r.name == name) return &r;
    for (auto a : r.aliases)
      if (a == name) return &r;
  }
  return nullptr;
}

std::string rope_type_names() {
  std::string out;
  for (const auto& r : kRows) out += (out.empty() ? "" : ", ") + std::string(r.name);
  return out;
}

const RopeParam* find_param(const RopeTypeInfo& info, std::string_view key) {
  for (const auto& p : info.params)
    if (p.key == key) return &p;
  return nullptr;
}

int64_t rope_reach(const RopeSpec& s, int64_t trained) {
  if (!rope_type_info(s.type).reach_scales_with_factor) return trained;
  const double reach = s.factor * static_cast<double>(trained);
  if (!(reach > 0)) return trained;
  return reach >= 9.0e18 ? INT64_MAX : static_cast<int64_t>(std::llround(reach));
}

bool RopeSpec::is_dynamic() const { return rope_type_info(type).length_dependent; }

std::string_view to_string(RopeType t) { return rope_type_info(t).name; }

std::optional<RopeType> parse_rope_type(std::string_view name) {
  const RopeTypeInfo* r = find_rope_type(name);
  return r ? std::optional<RopeType>(r->type) : std::nullopt;
}

}  // namespace ropescale
