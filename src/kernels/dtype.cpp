// Storage types of activations and caches: names, sizes, round-to-nearest-even
// f32 → f16 / bf16 and back, and whole-array loads and stores.
#include "ropescale/kernels/dtype.h"

#include <cmath>
#include <cstring>

#include "ropescale/kernels/convert.h"
#include "rotary_rows.h"

namespace ropescale {

std::string_view to_string(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
  }
  return "?";
}

size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }

uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(x >> 16);
}

float bf16_to_float(uint16_t h) {
  const uint32_t x = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

uint16_t float_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  const int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow → inf
  if (e <= 0) {                                                // f16 subnormal or zero
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    uint32_t m = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry rounds up into the exponent
  return static_cast<uint16_t>(h);
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31)
    x = sign | 0x7f800000u | (mant << 13);
  else
    x = sign | ((exp + 112u) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

void store_floats(DType t, const float* src, void* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) detail::store_scalar(dst, t, static_cast<int64_t>(i), src[i]);
}

float load_float(DType t, const void* src, size_t i) { return detail::load_scalar(src, t, static_cast<int64_t>(i)); }

void load_floats(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * sizeof(float)); break;
    case DType::F16: f16_to_f32(static_cast<const uint16_t*>(src), dst, n); break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) dst[i] = detail::load_scalar(src, t, static_cast<int64_t>(i));
      break;
  }
}

}  // namespace ropescale
