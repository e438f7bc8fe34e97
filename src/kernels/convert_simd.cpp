#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/convert_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "softmax_exp-inl.h"

#include <cmath>

#include "ropescale/kernels/convert.h"
#include "ropescale/kernels/rotary.h"

HWY_BEFORE_NAMESPACE();
namespace ropescale {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void F16ToF32(const uint16_t* src, float* dst, size_t n) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<hwy::float16_t, decltype(d)> dh;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(src) + i)), d, dst + i);
  for (; i < n; ++i) dst[i] = f16_to_float(src[i]);
}

void F32ToF16(const float* src, uint16_t* dst, size_t n) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<hwy::float16_t, decltype(d)> dh;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
#if HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
  // Hardware conversions round to nearest even; emulated ones may not, so
  // those targets keep the scalar twin.
  for (; i + N <= n; i += N) hn::StoreU(hn::DemoteTo(dh, hn::LoadU(d, src + i)), dh, reinterpret_cast<hwy::float16_t*>(dst) + i);
#endif
  (void)N;
  (void)dh;
  for (; i < n; ++i) dst[i] = float_to_f16(src[i]);
}

void ExpShifted(float* x, size_t n, float shift) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, shift);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(softmax::SoftmaxExp(d, hn::Sub(hn::LoadU(d, x + i), vs)), d, x + i);
  for (; i < n; ++i) x[i] = x[i] - shift < -87.0f ? 0.0f : std::exp(x[i] - shift);
}

}  // namespace HWY_NAMESPACE
}  // namespace ropescale
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ropescale {
HWY_EXPORT(F16ToF32);
HWY_EXPORT(F32ToF16);
HWY_EXPORT(ExpShifted);
void exp_shifted(float* x, size_t n, float shift) { HWY_DYNAMIC_DISPATCH(ExpShifted)(x, n, shift); }
void f16_to_f32(const uint16_t* src, float* dst, size_t n) { HWY_DYNAMIC_DISPATCH(F16ToF32)(src, dst, n); }
void f32_to_f16(const float* src, uint16_t* dst, size_t n) { HWY_DYNAMIC_DISPATCH(F32ToF16)(src, dst, n); }
}  // namespace ropescale
#endif
