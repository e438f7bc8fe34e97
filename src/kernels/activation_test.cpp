// The SIMD SwiGLU forward and backward against their scalar twins, on random
// inputs of lengths that leave every tail size, and on edge values (zeros,
// large magnitudes where σ saturates, ±inf, denormals); plus the definition
// itself in double precision.
#include "ropescale/kernels/activation.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace ropescale {
namespace {

std::vector<float> inputs(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Relative error with an absolute floor; equal infinities count as equal.
double error(float got, float want) {
  if (std::isinf(want) && got == want) return 0;
  if (std::isnan(got) != std::isnan(want)) return 1e30;
  if (std::isnan(want)) return 0;
  return std::abs(double(got) - want) / std::max(1.0, std::abs(double(want)));
}

void expect_twins_agree(const std::vector<float>& h1, const std::vector<float>& h3, const std::vector<float>& dg,
                        const char* what) {
  const size_t n = h1.size();
  std::vector<float> fast = h1, slow = h1;
  swiglu(fast.data(), h3.data(), n);
  swiglu_scalar(slow.data(), h3.data(), n);
  std::vector<float> dh1(n), dh3(n), sdh1(n), sdh3(n);
  swiglu_backward(h1.data(), h3.data(), dg.data(), dh1.data(), dh3.data(), n);
  swiglu_backward_scalar(h1.data(), h3.data(), dg.data(), sdh1.data(), sdh3.data(), n);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_LT(error(fast[i], slow[i]), 4e-6) << what << " forward at " << i << " h1 " << h1[i] << " h3 " << h3[i];
    ASSERT_LT(error(dh3[i], sdh3[i]), 4e-6) << what << " dh3 at " << i << " h1 " << h1[i];
    ASSERT_LT(error(dh1[i], sdh1[i]), 4e-6) << what << " dh1 at " << i << " h1 " << h1[i];
  }
}

TEST(Activation, SimdSwiGLUMatchesScalarTwinOnRandomLengths) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{3}, size_t{7}, size_t{8}, size_t{9}, size_t{17}, size_t{31}, size_t{352},
                   size_t{1000}})
    for (float scale : {0.5f, 4.0f, 30.0f})
      expect_twins_agree(inputs(n, n + 1, scale), inputs(n, n + 2, 1.0f), inputs(n, n + 3, 1.0f), "random");
}

TEST(Activation, SimdSwiGLUEdgeValues) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> h1 = {0.0f, -0.0f, 1e-40f, -1e-40f, 88.0f, -88.0f, 89.0f, -89.0f, 100.0f, -100.0f, 1e30f, -1e30f,
                           inf,  -inf, 20.0f, -20.0f};
  std::vector<float> h3(h1.size(), 1.5f), dg(h1.size(), -0.75f);
  expect_twins_agree(h1, h3, dg, "edge");
  std::vector<float> out = h1;
  swiglu(out.data(), h3.data(), out.size());
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_FLOAT_EQ(out[8], 150.0f);          // silu(100) = 100
  EXPECT_EQ(out[9], 0.0f);                  // silu(−100) underflows to 0
  EXPECT_EQ(out[12], inf);                  // silu(inf) = inf
}

TEST(Activation, SwiGLUIsSiluTimesGateInDouble) {
  const auto h1 = inputs(64, 5, 3.0f), h3 = inputs(64, 6, 1.0f), dg = inputs(64, 7, 1.0f);
  std::vector<float> out = h1, dh1(64), dh3(64);
  swiglu(out.data(), h3.data(), 64);
  swiglu_backward(h1.data(), h3.data(), dg.data(), dh1.data(), dh3.data(), 64);
  for (size_t i = 0; i < 64; ++i) {
    const double a = h1[i], sig = 1.0 / (1.0 + std::exp(-a));
    EXPECT_NEAR(out[i], a * sig * h3[i], 1e-5 * (1 + std::abs(a * sig * h3[i])));
    EXPECT_NEAR(dh3[i], dg[i] * a * sig, 1e-5 * (1 + std::abs(a)));
    // Central difference of silu in double for the slope.
    const double e = 1e-5, slope = ((a + e) / (1 + std::exp(-(a + e))) - (a - e) / (1 + std::exp(-(a - e)))) / (2 * e);
    EXPECT_NEAR(dh1[i], dg[i] * h3[i] * slope, 1e-4 * (1 + std::abs(dg[i] * h3[i] * slope)));
  }
}

}  // namespace
}  // namespace ropescale
