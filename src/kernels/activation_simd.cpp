// SwiGLU forward/backward (activation.h), compiled once per SIMD target with
// Highway and dispatched at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/activation_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

#include <cmath>

#include "ropescale/kernels/activation.h"

HWY_BEFORE_NAMESPACE();
namespace ropescale {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

namespace activation_impl {
// σ(a) = 1 / (1 + e^−a); Exp saturates to 0 / +inf, so σ goes cleanly to 1 / 0.
template <class D, class V>
HWY_INLINE V Sigmoid(D d, V a) {
  const auto one = hn::Set(d, 1.0f);
  return hn::Div(one, hn::Add(one, hn::Exp(d, hn::Neg(a))));
}
}  // namespace activation_impl

void SwiGLU(float* h1, const float* h3, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto a = hn::LoadU(d, h1 + i);
    hn::StoreU(hn::Mul(hn::Mul(a, activation_impl::Sigmoid(d, a)), hn::LoadU(d, h3 + i)), d, h1 + i);
  }
  swiglu_scalar(h1 + i, h3 + i, n - i);
}

void SwiGLUBackward(const float* h1, const float* h3, const float* dg, float* dh1, float* dh3, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  const auto one = hn::Set(d, 1.0f);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto a = hn::LoadU(d, h1 + i), g = hn::LoadU(d, dg + i);
    const auto sig = activation_impl::Sigmoid(d, a);
    hn::StoreU(hn::Mul(g, hn::Mul(a, sig)), d, dh3 + i);
    const auto slope = hn::Mul(sig, hn::MulAdd(a, hn::Sub(one, sig), one));
    hn::StoreU(hn::Mul(hn::Mul(g, hn::LoadU(d, h3 + i)), slope), d, dh1 + i);
  }
  swiglu_backward_scalar(h1 + i, h3 + i, dg + i, dh1 + i, dh3 + i, n - i);
}

}  // namespace HWY_NAMESPACE
}  // namespace ropescale
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ropescale {

HWY_EXPORT(SwiGLU);
HWY_EXPORT(SwiGLUBackward);

void swiglu_scalar(float* h1, const float* h3, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float a = h1[i];
    h1[i] = a / (1.0f + std::exp(-a)) * h3[i];
  }
}

void swiglu_backward_scalar(const float* h1, const float* h3, const float* dg, float* dh1, float* dh3, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float a = h1[i], sig = 1.0f / (1.0f + std::exp(-a)), silu = a * sig;
    dh3[i] = dg[i] * silu;
    dh1[i] = dg[i] * h3[i] * sig * (1.0f + a * (1.0f - sig));
  }
}

void swiglu(float* h1, const float* h3, size_t n) { HWY_DYNAMIC_DISPATCH(SwiGLU)(h1, h3, n); }
void swiglu_backward(const float* h1, const float* h3, const float* dg, float* dh1, float* dh3, size_t n) {
  HWY_DYNAMIC_DISPATCH(SwiGLUBackward)(h1, h3, dg, dh1, dh3, n);
}

}  // namespace ropescale
#endif  // HWY_ONCE
