// SwiGLU, forward and backward, SIMD with runtime dispatch (Highway's Exp in
// the sigmoid), each with a plain scalar twin the tests compare it with.
#pragma once

#include <cstddef>

namespace ropescale {

// h1[i] = silu(h1[i]) · h3[i], silu(a) = a · σ(a).
void swiglu(float* h1, const float* h3, size_t n);
void swiglu_scalar(float* h1, const float* h3, size_t n);

// The backward of g = silu(h1) · h3: dh3 = dg · silu(h1), dh1 = dg · h3 · silu'(h1),
// silu'(a) = σ(a) (1 + a (1 − σ(a))).
void swiglu_backward(const float* h1, const float* h3, const float* dg, float* dh1, float* dh3, size_t n);
void swiglu_backward_scalar(const float* h1, const float* h3, const float* dg, float* dh1, float* dh3, size_t n);

}  // namespace ropescale
