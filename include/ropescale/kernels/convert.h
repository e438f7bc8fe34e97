// Small vector kernels, SIMD with runtime dispatch: f32 <-> f16 array
// conversion (round to nearest even; scalar twins float_to_f16 / f16_to_float
// in dtype.h) and the shifted exponential attention's softmax needs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ropescale {

void f16_to_f32(const uint16_t* src, float* dst, size_t n);
void f32_to_f16(const float* src, uint16_t* dst, size_t n);
// x[i] = exp(x[i] − shift) for shift ≥ every x[i] (softmax: shift = the max),
// to a few ulp of std::exp; arguments below −87 give exactly 0
// (softmax_exp-inl.h, the attention kernel's exponential).
void exp_shifted(float* x, size_t n, float shift);

}  // namespace ropescale
