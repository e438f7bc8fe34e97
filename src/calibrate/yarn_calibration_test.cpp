// YaRN calibration: the betas land on the intended whole-pair ramp, the
// theoretical critical pair matches LongRoPE2's figure for LLaMA3-8B, and the
// search finds a synthetic fitness's known optimum, deterministically, within
// its budget.
#include "ropescale/calibrate/yarn_calibration.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ropescale/rope/frequencies.h"

namespace ropescale {
namespace {

RopeSpec yarn(double theta, int d, int64_t L, double factor) {
  RopeSpec s;
  s.type = RopeType::Yarn;
  s.theta = theta;
  s.head_dim = s.rotary_dim = d;
  s.original_max_position = L;
  s.factor = factor;
  return s;
}

TEST(YarnCalibration, BetasLandOnTheRequestedRamp) {
  for (const RopeSpec& base : {yarn(10000, 32, 256, 8), yarn(500000, 128, 8192, 16), yarn(10000, 8, 512, 4)})
    for (int low = 0; low < base.pairs(); ++low)
      for (int high = low + 1; high <= base.pairs(); ++high) {
        RopeSpec s = base;
        std::tie(s.beta_fast, s.beta_slow) = yarn_betas_for_range(base, low, high);
        const YarnRange r = yarn_correction_range(s);
        EXPECT_EQ(r.low, low) << base.rotary_dim << " " << low << "-" << high;
        EXPECT_EQ(r.high, high) << base.rotary_dim << " " << low << "-" << high;
        EXPECT_GT(s.beta_fast, s.beta_slow);
      }
  EXPECT_THROW(yarn_betas_for_range(yarn(10000, 32, 256, 8), 5, 5), std::invalid_argument);
  EXPECT_THROW(yarn_betas_for_range(yarn(10000, 32, 256, 8), 3, 17), std::invalid_argument);
}

TEST(YarnCalibration, TheoreticalCriticalPairOfLlama3IsLongRope2s) {
  // LongRoPE2: d_tcd = ⌈(d/2)·log_b(L_train/2π)⌉ = 35 for LLaMA3-8B (θ 500000, head_dim 128, 8192 tokens).
  EXPECT_EQ(theoretical_critical_pair(yarn(500000, 128, 8192, 16)), 35);
}

TEST(YarnCalibration, SearchFindsAKnownOptimumDeterministically) {
  const RopeSpec base = yarn(10000, 32, 256, 8);
  const double a0 = yarn_mscale(8);
  // A bowl with its minimum at the ramp [5, 11] and 1.1 × YaRN's attention factor.
  auto fitness = [&](const RopeSpec& s) {
    const YarnRange r = yarn_correction_range(s);
    return std::pow(r.low - 5, 2) + std::pow(r.high - 11, 2) + 100 * std::pow(*s.attention_factor / a0 - 1.1, 2);
  };
  const YarnSearchResult a = search_yarn(base, fitness);
  EXPECT_EQ(a.best.low, 5);
  EXPECT_EQ(a.best.high, 11);
  EXPECT_NEAR(a.best.attention_factor, 1.1 * a0, 1e-12);
  EXPECT_NEAR(a.best.fitness, 0.0, 1e-12);
  EXPECT_EQ(a.history.front().beta_fast, 32.0);  // YaRN as published comes first
  EXPECT_EQ(a.yarn_default.fitness, a.history.front().fitness);
  EXPECT_LE(a.evals, 136 + 2 * (8 + 25));  // every ramp of 16 pairs, then two factor + neighbour rounds
  const YarnSearchResult b = search_yarn(base, fitness);
  ASSERT_EQ(a.history.size(), b.history.size());
  for (size_t i = 0; i < a.history.size(); ++i) EXPECT_EQ(a.history[i].fitness, b.history[i].fitness);
  // A budget stops it with the best so far.
  YarnSearchOptions o;
  o.max_evals = 10;
  const YarnSearchResult c = search_yarn(base, fitness, o);
  EXPECT_EQ(c.evals, 10);
  EXPECT_TRUE(c.stopped_by_budget);
  EXPECT_EQ(c.history.size(), 10u);
}

}  // namespace
}  // namespace ropescale
