// small_batch_matmul (small_batch_matmul.h), compiled once per SIMD target with
// Highway and dispatched at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/small_batch_matmul_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <algorithm>
#include <cstddef>

#include "ropescale/kernels/small_batch_matmul.h"

HWY_BEFORE_NAMESPACE();
namespace ropescale {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Inputs in groups of four: one weight load feeds four fused multiply-adds. A group with fewer
// than four inputs repeats its last one (the extra sums are discarded).
void SmallBatchMatmul(const float* x, int n, const float* w, int rows, int in, float* y, int ldy) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d), len = size_t(in);
  for (int b0 = 0; b0 < n; b0 += 4) {
    const int g = std::min(4, n - b0);
    const float* x0 = x + size_t(b0) * len;
    const float* x1 = x + size_t(b0 + std::min(1, g - 1)) * len;
    const float* x2 = x + size_t(b0 + std::min(2, g - 1)) * len;
    const float* x3 = x + size_t(b0 + std::min(3, g - 1)) * len;
    for (int o = 0; o < rows; ++o) {
      const float* wr = w + size_t(o) * len;
      auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
      size_t i = 0;
      for (; i + N <= len; i += N) {
        const auto wv = hn::LoadU(d, wr + i);
        a0 = hn::MulAdd(wv, hn::LoadU(d, x0 + i), a0);
        a1 = hn::MulAdd(wv, hn::LoadU(d, x1 + i), a1);
        a2 = hn::MulAdd(wv, hn::LoadU(d, x2 + i), a2);
        a3 = hn::MulAdd(wv, hn::LoadU(d, x3 + i), a3);
      }
      float s[4] = {hn::GetLane(hn::SumOfLanes(d, a0)), hn::GetLane(hn::SumOfLanes(d, a1)), hn::GetLane(hn::SumOfLanes(d, a2)), hn::GetLane(hn::SumOfLanes(d, a3))};
      for (; i < len; ++i) {
        s[0] += wr[i] * x0[i];
        s[1] += wr[i] * x1[i];
        s[2] += wr[i] * x2[i];
        s[3] += wr[i] * x3[i];
      }
      for (int k = 0; k < g; ++k) y[size_t(b0 + k) * ldy + o] = s[k];
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace ropescale
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ropescale {

HWY_EXPORT(SmallBatchMatmul);

void small_batch_matmul(const float* x, int n, const float* w, int rows, int in, float* y, int ldy) {
  HWY_DYNAMIC_DISPATCH(SmallBatchMatmul)(x, n, w, rows, in, y, ldy);
}

void small_batch_matmul_scalar(const float* x, int n, const float* w, int rows, int in, float* y, int ldy) {
  for (int b = 0; b < n; ++b)
    for (int o = 0; o < rows; ++o) {
      float s = 0;
      for (int i = 0; i < in; ++i) s += x[size_t(b) * in + i] * w[size_t(o) * in + i];
      y[size_t(b) * ldy + o] = s;
    }
}

}  // namespace ropescale
#endif  // HWY_ONCE
