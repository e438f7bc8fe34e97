// The small-batch product against its scalar twin and a double-precision sum,
// on random shapes (lengths off the vector width, every batch size, one row).
#include "ropescale/kernels/small_batch_matmul.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace ropescale {
namespace {

TEST(SmallBatchMatmul, MatchesItsScalarTwinAndADoubleSum) {
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int n = 1; n <= kMaxSmallBatch; ++n)
    for (auto [rows, in] : {std::pair{1, 1}, {3, 7}, {5, 16}, {33, 129}, {64, 300}, {2, 1024}}) {
      SCOPED_TRACE(::testing::Message() << "n " << n << " rows " << rows << " in " << in);
      std::vector<float> x(size_t(n) * in), w(size_t(rows) * in);
      for (auto& v : x) v = g(rng);
      for (auto& v : w) v = g(rng);
      const int ldy = rows + 3;  // a strided output, as for the Q/K/V targets of one input
      std::vector<float> simd(size_t(n) * ldy, -7.0f), scalar(simd);
      small_batch_matmul(x.data(), n, w.data(), rows, in, simd.data(), ldy);
      small_batch_matmul_scalar(x.data(), n, w.data(), rows, in, scalar.data(), ldy);
      for (int b = 0; b < n; ++b) {
        for (int o = 0; o < rows; ++o) {
          double exact = 0, mag = 0;
          for (int i = 0; i < in; ++i) exact += double(x[size_t(b) * in + i]) * w[size_t(o) * in + i], mag += std::abs(double(x[size_t(b) * in + i]) * w[size_t(o) * in + i]);
          const double tol = 1e-6 * mag + 1e-6;
          EXPECT_NEAR(simd[size_t(b) * ldy + o], exact, tol);
          EXPECT_NEAR(scalar[size_t(b) * ldy + o], exact, tol);
        }
        for (int o = rows; o < ldy; ++o) EXPECT_EQ(simd[size_t(b) * ldy + o], -7.0f) << "wrote past the row";
      }
    }
  // Edge values: zeros and infinities propagate as in the scalar sum.
  const float x[2] = {0.0f, INFINITY}, w[2] = {1.0f, 1.0f};
  float y[2];
  small_batch_matmul(x, 2, w, 1, 1, y, 1);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], INFINITY);
}

}  // namespace
}  // namespace ropescale
