// f32 <-> f16 array conversion (round to nearest even), SIMD with runtime
// dispatch; the scalar twins are float_to_f16 / f16_to_float (rotary.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ropescale {

void f16_to_f32(const uint16_t* src, float* dst, size_t n);
void f32_to_f16(const float* src, uint16_t* dst, size_t n);

}  // namespace ropescale
