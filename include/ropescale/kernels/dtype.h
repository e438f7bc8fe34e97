// Storage types of activations, weights and KV caches (f32, f16, bf16): their
// names and sizes, the round-to-nearest-even conversions both rotary twins and
// the converters share, and whole-array loads and stores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ropescale {

enum class DType { F32, F16, BF16 };
std::string_view to_string(DType t);
size_t dtype_size(DType t);

// Writes `n` floats into `dst` in storage type `t` (16-bit types rounded to
// nearest even); reads them back. For callers that prepare or inspect tensors.
void store_floats(DType t, const float* src, void* dst, size_t n);
float load_float(DType t, const void* src, size_t i);
// Reads `n` values of storage type `t` as floats (f16 through the SIMD converter).
void load_floats(DType t, const void* src, float* dst, size_t n);

// Rounding used for 16-bit storage (round to nearest even), shared by both twins.
uint16_t float_to_bf16(float f);
float bf16_to_float(uint16_t h);
uint16_t float_to_f16(float f);
float f16_to_float(uint16_t h);

}  // namespace ropescale
