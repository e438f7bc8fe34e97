// Reference numbers: hand-derived from the published formulas and the f64 test
// vectors of docs/rope-reference.md §6 — never from this code.
#include "ropescale/rope/frequencies.h"

#include <cmath>

#include <gtest/gtest.h>

namespace ropescale {
namespace {

// |got − want| ≤ rel·|want| (the 1e-6 relative bar).
#define EXPECT_REL(got, want, rel) EXPECT_NEAR((got), (want), std::abs(want) * (rel)) << #got

RopeSpec spec(RopeType t, int d, double theta, double factor = 1.0) {
  RopeSpec s;
  s.type = t;
  s.rotary_dim = s.head_dim = d;
  s.theta = theta;
  s.factor = factor;
  return s;
}

TEST(Frequencies, DefaultByHand) {
  // d = 4, b = 10000: inv = [b^0, b^(−2/4)] = [1, 0.01].
  auto f = compute_frequencies(spec(RopeType::Default, 4, 10000));
  ASSERT_EQ(f.inv_freq.size(), 2u);
  EXPECT_DOUBLE_EQ(f.inv_freq[0], 1.0);
  EXPECT_REL(f.inv_freq[1], 0.01, 1e-12);
  EXPECT_EQ(f.attention_factor, 1.0);
}

TEST(Frequencies, LinearDividesByFactor) {
  auto f = compute_frequencies(spec(RopeType::Linear, 4, 10000, 4.0));
  EXPECT_DOUBLE_EQ(f.inv_freq[0], 0.25);
  EXPECT_REL(f.inv_freq[1], 0.0025, 1e-12);
}

TEST(Frequencies, NtkAwareBase) {
  // bloc97: α = 8, d = 128, b = 1e4 → b' = 82684.622641 (§5, §6.3).
  EXPECT_REL(ntk_theta(10000, 8, 128), 82684.622641, 1e-9);
  auto f = compute_frequencies(spec(RopeType::Ntk, 128, 10000, 8.0));
  EXPECT_REL(f.effective_theta, 82684.622641, 1e-9);
  EXPECT_REL(f.inv_freq[1], std::pow(82684.622641, -2.0 / 128), 1e-9);
}

TEST(Frequencies, DynamicNtkBases) {
  // §6.3: b = 1e4, d = 128, Lm = 4096.
  RopeSpec s = spec(RopeType::Dynamic, 128, 10000, 2.0);
  s.max_position = 4096;
  EXPECT_REL(dynamic_ntk_theta(s, 8192), 30527.736749, 1e-9);
  EXPECT_REL(dynamic_ntk_theta(s, 4096), 10000.0, 1e-12);
  EXPECT_REL(dynamic_ntk_theta(s, 100), 10000.0, 1e-12);  // seq = max(seq_len, Lm)
  s.factor = 4.0;
  EXPECT_REL(dynamic_ntk_theta(s, 16384), 135401.973042, 1e-9);
  // At init (no seq_len) dynamic NTK is plain RoPE.
  auto f0 = compute_frequencies(s);
  auto d0 = compute_frequencies(spec(RopeType::Default, 128, 10000));
  for (size_t j = 0; j < f0.inv_freq.size(); ++j) EXPECT_DOUBLE_EQ(f0.inv_freq[j], d0.inv_freq[j]);
  auto f = compute_frequencies(s, 16384);
  EXPECT_REL(f.inv_freq[10], std::pow(135401.973042, -20.0 / 128), 1e-9);
}

// §6.1 Llama-3.1-8B: b = 500000, d = 128, s = 8, low 1, high 4, L = 8192.
RopeSpec llama31() {
  RopeSpec s = spec(RopeType::Llama3, 128, 500000, 8.0);
  s.original_max_position = 8192;
  s.low_freq_factor = 1;
  s.high_freq_factor = 4;
  return s;
}

TEST(Frequencies, Llama31Vectors) {
  auto f = compute_frequencies(llama31());
  ASSERT_EQ(f.inv_freq.size(), 64u);
  EXPECT_REL(f.inv_freq[0], 1.0, 1e-12);
  EXPECT_REL(f.inv_freq[28], 3.2114459948e-03, 1e-9);
  EXPECT_REL(f.inv_freq[29], 2.1665707635e-03, 1e-9);
  EXPECT_REL(f.inv_freq[30], 1.3718935678e-03, 1e-9);
  EXPECT_REL(f.inv_freq[31], 8.5675141292e-04, 1e-9);
  EXPECT_REL(f.inv_freq[32], 5.2484616099e-04, 1e-9);
  EXPECT_REL(f.inv_freq[33], 3.1269375038e-04, 1e-9);
  EXPECT_REL(f.inv_freq[34], 1.7850781277e-04, 1e-9);
  EXPECT_REL(f.inv_freq[35], 9.5562123540e-05, 1e-9);
  EXPECT_REL(f.inv_freq[63], 3.0689259889e-07, 1e-9);
  EXPECT_EQ(f.attention_factor, 1.0);
  // The divisors are what llama.cpp stores as rope_freqs.
  auto div = divisors_against_default(llama31(), f);
  EXPECT_REL(div[29], 1.207483871, 1e-8);
  EXPECT_REL(div[32], 2.694529688, 1e-8);
  EXPECT_REL(div[34], 5.257326589, 1e-8);
  EXPECT_REL(div[35], 8.0, 1e-12);
  EXPECT_REL(div[28], 1.0, 1e-12);
  // Band counts: 29 unchanged, 6 smoothed, 29 divided by 8.
  int unchanged = 0, smoothed = 0, divided = 0;
  for (double d : div) (d == 1.0 ? unchanged : std::abs(d - 8.0) < 1e-12 ? divided : smoothed)++;
  EXPECT_EQ(unchanged, 29);
  EXPECT_EQ(smoothed, 6);
  EXPECT_EQ(divided, 29);
}

TEST(Frequencies, Llama3EqualBandFactorsHasNoNaN) {
  RopeSpec s = llama31();
  s.low_freq_factor = s.high_freq_factor = 2.0;  // Llama-4 style: the smooth term is 0/0
  auto f = compute_frequencies(s);
  for (double x : f.inv_freq) EXPECT_TRUE(std::isfinite(x));
  // With the band empty every pair is either unchanged or divided by s.
  auto base = compute_frequencies(spec(RopeType::Default, 128, 500000));
  for (size_t j = 0; j < f.inv_freq.size(); ++j) {
    const double r = base.inv_freq[j] / f.inv_freq[j];
    EXPECT_TRUE(std::abs(r - 1.0) < 1e-12 || std::abs(r - 8.0) < 1e-12) << "pair " << j << " ratio " << r;
  }
}

RopeSpec yarn(int d, double theta, double s, int64_t L) {
  RopeSpec y = spec(RopeType::Yarn, d, theta, s);
  y.original_max_position = L;
  return y;
}

TEST(Frequencies, YarnCorrectionDims) {
  // §6.2 raw correction dims (before floor/ceil).
  EXPECT_REL(yarn_correction_dim(32, 128, 1e6, 32768), 23.595948, 1e-7);
  EXPECT_REL(yarn_correction_dim(1, 128, 1e6, 32768), 39.650881, 1e-7);
  EXPECT_REL(yarn_correction_dim(32, 128, 1e4, 4096), 20.944482, 1e-7);
  EXPECT_REL(yarn_correction_dim(1, 128, 1e4, 4096), 45.026881, 1e-7);
  EXPECT_REL(yarn_correction_dim(32, 64, 1e4, 4096), 10.472241, 1e-7);
  EXPECT_REL(yarn_correction_dim(1, 64, 1e4, 4096), 22.513441, 1e-7);
  auto r = yarn_correction_range(yarn(128, 1e6, 4, 32768));
  EXPECT_EQ(r.low, 23);
  EXPECT_EQ(r.high, 40);
}

TEST(Frequencies, YarnQwen) {
  auto f = compute_frequencies(yarn(128, 1e6, 4, 32768));
  EXPECT_REL(f.attention_factor, 1.138629436, 1e-9);
  EXPECT_REL(f.inv_freq[24], 5.3753214908e-03, 1e-9);
  EXPECT_REL(f.inv_freq[39], 6.4903943208e-05, 1e-9);
  EXPECT_REL(f.inv_freq[40], 4.4456985251e-05, 1e-9);
  EXPECT_REL(f.inv_freq[63], 3.1023444019e-07, 1e-9);
  // High-frequency pairs (j ≤ low = 23) keep their frequency.
  EXPECT_REL(f.inv_freq[23], std::pow(1e6, -46.0 / 128), 1e-12);
}

TEST(Frequencies, YarnLlama2_128k) {
  auto f = compute_frequencies(yarn(128, 1e4, 32, 4096));
  EXPECT_REL(f.attention_factor, 1.346573590, 1e-9);
  EXPECT_REL(f.inv_freq[21], 4.6882330247e-02, 1e-9);
  EXPECT_REL(f.inv_freq[45], 1.0549977402e-04, 1e-9);
  EXPECT_REL(f.inv_freq[46], 4.1672544755e-05, 1e-9);
  EXPECT_REL(compute_frequencies(yarn(128, 1e4, 16, 4096)).attention_factor, 1.277258872, 1e-9);
}

TEST(Frequencies, YarnDeepSeekV3Mscale) {
  RopeSpec s = yarn(64, 1e4, 40, 4096);
  s.mscale = 1.0;
  s.mscale_all_dim = 1.0;
  auto f = compute_frequencies(s);
  EXPECT_REL(f.attention_factor, 1.0, 1e-12);  // ratio of equal mscales
  EXPECT_REL(f.inv_freq[11], 3.9006926567e-02, 1e-9);
  EXPECT_REL(f.inv_freq[22], 1.7782794100e-04, 1e-9);
  EXPECT_REL(f.inv_freq[23], 3.3338035804e-05, 1e-9);
  EXPECT_REL(f.inv_freq[31], 3.3338035804e-06, 1e-9);
  // The softmax-scale side DeepSeek applies: mscale(40, 1)² = 1.873854207.
  EXPECT_REL(std::pow(yarn_mscale(40, 1.0), 2), 1.873854207, 1e-9);
  // DeepSeek-V2 (0.707 / 0.707): still 1.0 on cos/sin; softmax ×1.589626165.
  s.mscale = s.mscale_all_dim = 0.707;
  EXPECT_REL(compute_frequencies(s).attention_factor, 1.0, 1e-12);
  EXPECT_REL(std::pow(yarn_mscale(40, 0.707), 2), 1.589626165, 1e-8);
  // A lone mscale is ignored by HF: default 0.1·ln(s)+1 = 1.368887945.
  s.mscale_all_dim.reset();
  EXPECT_REL(compute_frequencies(s).attention_factor, 1.368887945, 1e-9);
  // An explicit attention_factor wins over everything.
  s.attention_factor = 0.5;
  EXPECT_EQ(compute_frequencies(s).attention_factor, 0.5);
}

TEST(Frequencies, YarnGptOssTruncateFalse) {
  RopeSpec s = yarn(64, 150000, 32, 4096);
  s.truncate = false;
  auto r = yarn_correction_range(s);
  EXPECT_REL(r.low, 8.092779116, 1e-9);
  EXPECT_REL(r.high, 17.398024502, 1e-9);
  auto f = compute_frequencies(s);
  EXPECT_REL(f.attention_factor, 1.346573590, 1e-9);
  EXPECT_REL(f.inv_freq[9], 3.1705696185e-02, 1e-9);
  EXPECT_REL(f.inv_freq[16], 4.5648391922e-04, 1e-9);
  EXPECT_REL(f.inv_freq[17], 1.2931870125e-04, 1e-9);
}

TEST(Frequencies, GgmlConventionDiffersWhereDocumented) {
  // 1. ggml cannot leave the range unrounded: truncate=false is floored/ceiled.
  RopeSpec s = yarn(64, 150000, 32, 4096);
  s.truncate = false;
  s.convention = Convention::GGML;
  auto r = yarn_correction_range(s);
  EXPECT_EQ(r.low, 8);
  EXPECT_EQ(r.high, 18);
  // 2. Built-in magnitude 1 + 0.1·ln(s) applies even for s < 1 (HF: 1).
  RopeSpec shrink = yarn(128, 1e4, 0.5, 4096);
  EXPECT_EQ(compute_frequencies(shrink).attention_factor, 1.0);
  shrink.convention = Convention::GGML;
  EXPECT_REL(compute_frequencies(shrink).attention_factor, 1.0 + 0.1 * std::log(0.5), 1e-12);
  // ... and multiplies an explicit attn factor (the "magnitude twice" trap).
  RopeSpec q = yarn(128, 1e6, 4, 32768);
  q.convention = Convention::GGML;
  q.attention_factor = 1.138629436;
  EXPECT_REL(compute_frequencies(q).attention_factor, 1.138629436 * 1.138629436, 1e-9);
  // 3. Ramp denominator: equal low/high. HF adds 0.001 to high, ggml uses
  //    max(0.001, high − low): identical ramps.
  RopeSpec eq = yarn(8, 10000, 4, 512);
  eq.beta_fast = eq.beta_slow = 2.0;
  auto hf = compute_frequencies(eq);
  eq.convention = Convention::GGML;
  auto gg = compute_frequencies(eq);
  for (size_t j = 0; j < hf.inv_freq.size(); ++j) EXPECT_REL(gg.inv_freq[j], hf.inv_freq[j], 1e-12);
  // 4. Otherwise (Qwen case) the frequencies agree exactly.
  RopeSpec qh = yarn(128, 1e6, 4, 32768), qg = qh;
  qg.convention = Convention::GGML;
  auto a = compute_frequencies(qh), b = compute_frequencies(qg);
  for (size_t j = 0; j < a.inv_freq.size(); ++j) EXPECT_DOUBLE_EQ(a.inv_freq[j], b.inv_freq[j]);
  EXPECT_REL(b.attention_factor, a.attention_factor, 1e-12);
}

TEST(Frequencies, DynamicYarnFollowsLength) {
  RopeSpec s = yarn(128, 1e4, 1.0, 4096);
  s.type = RopeType::DynamicYarn;
  auto f0 = compute_frequencies(s, 2048);  // within L: plain RoPE
  auto d = compute_frequencies(spec(RopeType::Default, 128, 1e4));
  for (size_t j = 0; j < d.inv_freq.size(); ++j) EXPECT_REL(f0.inv_freq[j], d.inv_freq[j], 1e-12);
  EXPECT_EQ(f0.attention_factor, 1.0);
  auto f = compute_frequencies(s, 4096 * 16);  // s = 16 → same as static yarn 16
  auto st = compute_frequencies(yarn(128, 1e4, 16, 4096));
  EXPECT_EQ(f.effective_factor, 16.0);
  EXPECT_REL(f.attention_factor, 1.277258872, 1e-9);
  for (size_t j = 0; j < st.inv_freq.size(); ++j) EXPECT_REL(f.inv_freq[j], st.inv_freq[j], 1e-12);
}

TEST(Frequencies, LongRopeSwitchesAtOriginalLength) {
  RopeSpec s = spec(RopeType::LongRope, 8, 10000, 32.0);
  s.original_max_position = 4096;
  s.short_factor = {1, 2, 3, 4};
  s.long_factor = {10, 20, 30, 40};
  const double want_attn = std::sqrt(1 + std::log(32.0) / std::log(4096.0));
  EXPECT_REL(want_attn, 1.190238071, 1e-9);  // §6.3 Phi-3
  auto init = compute_frequencies(s);
  EXPECT_FALSE(init.uses_long_factors);
  EXPECT_REL(init.inv_freq[1], std::pow(10000.0, -2.0 / 8) / 2, 1e-12);
  EXPECT_REL(init.attention_factor, want_attn, 1e-12);
  auto at_L = compute_frequencies(s, 4096);
  EXPECT_FALSE(at_L.uses_long_factors);
  auto past = compute_frequencies(s, 4097);
  EXPECT_TRUE(past.uses_long_factors);
  EXPECT_REL(past.inv_freq[3], std::pow(10000.0, -6.0 / 8) / 40, 1e-12);
  EXPECT_REL(past.attention_factor, want_attn, 1e-12);  // same factor short and long
  s.factor = 1.0;
  EXPECT_EQ(compute_frequencies(s).attention_factor, 1.0);
}

TEST(Frequencies, LongRopeAttentionFactorPerRegime) {
  // vLLM's Phi3LongRoPE and HF's PhiMoE: short_mscale within L, long_mscale beyond; either
  // missing falls back to the attention factor rule (here the explicit attention_factor).
  RopeSpec s = spec(RopeType::LongRope, 8, 10000, 8.0);
  s.original_max_position = 256;
  s.short_factor = {1, 1, 1, 1};
  s.long_factor = {1, 2, 8, 16};
  s.attention_factor = 1.15;
  s.short_mscale = 1.0;
  EXPECT_EQ(compute_frequencies(s, 256).attention_factor, 1.0);
  EXPECT_EQ(compute_frequencies(s, 257).attention_factor, 1.15);  // no long_mscale: attention_factor
  s.long_mscale = 1.2;
  EXPECT_EQ(compute_frequencies(s, 257).attention_factor, 1.2);
  EXPECT_EQ(compute_frequencies(s, 256).attention_factor, 1.0);
  s.short_mscale.reset();
  EXPECT_EQ(compute_frequencies(s, 256).attention_factor, 1.15);
  for (double bad : {0.0, -1.0, double(NAN), double(INFINITY)}) {
    RopeSpec b = s;
    b.short_mscale = bad;
    EXPECT_THROW(compute_frequencies(b), std::invalid_argument) << bad;
    b.short_mscale.reset();
    b.long_mscale = bad;
    EXPECT_THROW(compute_frequencies(b), std::invalid_argument) << bad;
  }
}

TEST(Frequencies, PartialRotaryUsesRotaryDim) {
  RopeSpec s = spec(RopeType::Default, 32, 10000);
  s.head_dim = 128;  // 25 % rotary
  auto f = compute_frequencies(s);
  ASSERT_EQ(f.inv_freq.size(), 16u);
  EXPECT_REL(f.inv_freq[1], std::pow(10000.0, -2.0 / 32), 1e-12);
}

TEST(Frequencies, FreqDivisorsApplyOnTop) {
  RopeSpec s = spec(RopeType::Default, 4, 10000);
  s.freq_divisors = {1.0, 8.0};
  auto f = compute_frequencies(s);
  EXPECT_DOUBLE_EQ(f.inv_freq[0], 1.0);
  EXPECT_REL(f.inv_freq[1], 0.01 / 8, 1e-12);
}

TEST(Frequencies, RejectsUnusableSpecs) {
  EXPECT_THROW(compute_frequencies(spec(RopeType::Default, 3, 10000)), std::invalid_argument);      // odd
  EXPECT_THROW(compute_frequencies(spec(RopeType::Default, 0, 10000)), std::invalid_argument);      // empty
  EXPECT_THROW(compute_frequencies(spec(RopeType::Default, 1 << 20, 10000)), std::invalid_argument);  // absurd
  EXPECT_THROW(compute_frequencies(spec(RopeType::Default, 8, 1.0)), std::invalid_argument);        // ln b = 0
  EXPECT_THROW(compute_frequencies(spec(RopeType::Linear, 8, 1e4, 0.0)), std::invalid_argument);    // zero factor
  EXPECT_THROW(compute_frequencies(spec(RopeType::Linear, 8, 1e4, -2.0)), std::invalid_argument);   // negative
  EXPECT_THROW(compute_frequencies(spec(RopeType::Linear, 8, 1e4, NAN)), std::invalid_argument);    // NaN
  EXPECT_THROW(compute_frequencies(spec(RopeType::Linear, 8, 1e4, INFINITY)), std::invalid_argument);
  EXPECT_THROW(compute_frequencies(spec(RopeType::Ntk, 2, 1e4, 2.0)), std::invalid_argument);       // d/(d−2)
  EXPECT_THROW(compute_frequencies(spec(RopeType::Yarn, 8, 1e4, 2.0)), std::invalid_argument);      // no L
  RopeSpec lr = spec(RopeType::LongRope, 8, 1e4, 2.0);
  lr.original_max_position = 4096;
  lr.short_factor = {1, 1, 1};
  lr.long_factor = {1, 1, 1, 1};
  EXPECT_THROW(compute_frequencies(lr), std::invalid_argument);  // wrong list length
  RopeSpec d = spec(RopeType::Dynamic, 8, 1e4, 2.0);
  EXPECT_THROW(compute_frequencies(d), std::invalid_argument);  // no max_position
  EXPECT_THROW(compute_frequencies(spec(RopeType::Default, 8, 1e4), -1), std::invalid_argument);
}

TEST(Frequencies, ParsesTypeNamesAndAliases) {
  EXPECT_EQ(parse_rope_type("su"), RopeType::LongRope);
  EXPECT_EQ(parse_rope_type("none"), RopeType::Default);
  EXPECT_EQ(parse_rope_type("dynamic_yarn"), RopeType::DynamicYarn);
  EXPECT_FALSE(parse_rope_type("ntk-by-parts").has_value());
  for (RopeType t : {RopeType::Default, RopeType::Linear, RopeType::Ntk, RopeType::Dynamic, RopeType::Yarn,
                     RopeType::DynamicYarn, RopeType::LongRope, RopeType::Llama3})
    EXPECT_EQ(parse_rope_type(to_string(t)), t);
}

}  // namespace
}  // namespace ropescale
