// Internal to the kernels: the per-token cos/sin row both twins use, and the
// 16-bit load/store helpers of the scalar paths.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "ropescale/kernels/rotary.h"

namespace ropescale::detail {

struct AngleRow {
  const float* cos;  // d/2 values, attention factor folded in
  const float* sin;
};

// Row for absolute position `pos`: a pointer into the table, or computed into
// `scratch` (2 · pairs floats) from inv_freq, with angles formed in double and
// cos/sin rounded once to float — the same numbers build_cos_sin_table makes.
inline AngleRow angle_row(const RotaryAngles& a, int64_t pos, int pairs, float* scratch) {
  if (a.table) {
    const size_t off = static_cast<size_t>(pos - a.table->first_position) * a.table->pairs;
    return {a.table->cos.data() + off, a.table->sin.data() + off};
  }
  const std::vector<double>& inv = *a.inv_freq;
  for (int j = 0; j < pairs; ++j) {
    const double angle = static_cast<double>(pos) * inv[j];
    scratch[j] = static_cast<float>(std::cos(angle) * a.attention_factor);
    scratch[pairs + j] = static_cast<float>(std::sin(angle) * a.attention_factor);
  }
  return {scratch, scratch + pairs};
}

// Whether the optimized path may use the CPU's own bf16 conversion where it
// has one (AVX512_BF16). On by default; tests turn it off to reach the
// portable bf16 path on such CPUs too.
void set_native_bf16_enabled(bool enabled);
bool native_bf16_enabled();

inline float load_scalar(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::F16: return f16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
  }
  return 0;
}

inline void store_scalar(void* base, DType t, int64_t i, float v) {
  switch (t) {
    case DType::F32: static_cast<float*>(base)[i] = v; break;
    case DType::F16: static_cast<uint16_t*>(base)[i] = float_to_f16(v); break;
    case DType::BF16: static_cast<uint16_t*>(base)[i] = float_to_bf16(v); break;
  }
}

}  // namespace ropescale::detail
