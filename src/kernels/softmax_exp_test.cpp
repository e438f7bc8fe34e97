// exp_shifted (the softmax exponential the attention kernel uses too, from
// softmax_exp-inl.h) against std::exp in double: random arguments over the
// whole range a softmax produces, every vector tail, and the edges — 0,
// tiny, the −87 cut-off where it must give exactly 0, masked scores.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "ropescale/kernels/convert.h"

namespace ropescale {
namespace {

void expect_close_to_exp(const std::vector<float>& x, float shift) {
  std::vector<float> y = x;
  exp_shifted(y.data(), y.size(), shift);
  for (size_t i = 0; i < x.size(); ++i) {
    const double arg = double(x[i] - shift);  // the float argument the kernel sees
    if (arg < -87.0) {
      ASSERT_EQ(y[i], 0.0f) << "argument " << arg << " is below the cut-off";
      continue;
    }
    const double want = std::exp(arg);
    ASSERT_LE(std::abs(y[i] - want), 3e-7 * want) << "argument " << arg << " at " << i << " of " << x.size();
  }
}

TEST(SoftmaxExp, MatchesStdExpOnRandomArgumentsAndEveryTail) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> wide(-90.0f, 0.0f), near(-2.0f, 0.0f);
  for (size_t n : {size_t{1}, size_t{5}, size_t{8}, size_t{15}, size_t{16}, size_t{17}, size_t{64}, size_t{1000}}) {
    std::vector<float> a(n), b(n);
    for (auto& v : a) v = wide(rng);
    for (auto& v : b) v = near(rng);
    expect_close_to_exp(a, 0.0f);
    expect_close_to_exp(b, 0.0f);
    // Shifted: scores around 40 minus their max.
    std::vector<float> c(n);
    for (auto& v : c) v = 40.0f + near(rng) * 20.0f;
    expect_close_to_exp(c, *std::max_element(c.begin(), c.end()));
  }
}

TEST(SoftmaxExp, EdgeArguments) {
  const float big = std::numeric_limits<float>::max();
  std::vector<float> x = {0.0f, -0.0f, -1e-30f, -1e-7f, -0.34657359f, 0.34657359f - 0.6931472f, -1.0f, -10.0f, -50.0f,
                          -86.9f, -87.0f, -87.01f, -88.0f, -103.0f, -200.0f, -1e30f, -big};
  expect_close_to_exp(x, 0.0f);
  std::vector<float> y = x;
  exp_shifted(y.data(), y.size(), 0.0f);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y.back(), 0.0f) << "a masked score contributes nothing";
  // A masked score minus a very negative running max (an empty row) stays finite and zero.
  std::vector<float> masked(9, -big);
  exp_shifted(masked.data(), masked.size(), -1e30f);
  for (float v : masked) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace ropescale
