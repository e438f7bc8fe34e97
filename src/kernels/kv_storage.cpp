#include "ropescale/kernels/kv_storage.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ropescale/kernels/convert.h"
#include "ropescale/kernels/dtype.h"

namespace ropescale {

std::string_view to_string(KvType t) {
  switch (t) {
    case KvType::F32: return "f32";
    case KvType::F16: return "f16";
    case KvType::Q8_0: return "q8_0";
    case KvType::Q4_0: return "q4_0";
  }
  return "?";
}

std::optional<KvType> parse_kv_type(std::string_view name) {
  for (KvType t : {KvType::F32, KvType::F16, KvType::Q8_0, KvType::Q4_0})
    if (name == to_string(t)) return t;
  return std::nullopt;
}

bool is_quantized(KvType t) { return t == KvType::Q8_0 || t == KvType::Q4_0; }

bool kv_type_fits(KvType t, int head_dim) { return head_dim > 0 && (!is_quantized(t) || head_dim % kQuantBlock == 0); }

size_t kv_row_bytes(KvType t, int head_dim) {
  if (!kv_type_fits(t, head_dim))
    throw std::invalid_argument("KV cache " + std::string(to_string(t)) + " needs head_dim a multiple of " +
                                std::to_string(kQuantBlock) + " (this model's is " + std::to_string(head_dim) + ")");
  const size_t blocks = size_t(head_dim) / kQuantBlock;
  switch (t) {
    case KvType::F32: return size_t(head_dim) * 4;
    case KvType::F16: return size_t(head_dim) * 2;
    case KvType::Q8_0: return blocks * sizeof(BlockQ8_0);
    case KvType::Q4_0: return blocks * sizeof(BlockQ4_0);
  }
  return 0;
}

size_t kv_cache_bytes(KvType t, int layers, int kv_heads, int head_dim, int64_t tokens) {
  return 2 * size_t(layers) * size_t(tokens) * size_t(kv_heads) * kv_row_bytes(t, head_dim);
}

namespace {

// ggml's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d).
void quantize_q8_0(const float* x, BlockQ8_0& b) {
  float amax = 0;
  for (int j = 0; j < kQuantBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
  b.d = float_to_f16(d);
  for (int j = 0; j < kQuantBlock; ++j) b.qs[j] = static_cast<int8_t>(std::round(x[j] * id));
}

// ggml's quantize_row_q4_0_ref: the value of largest magnitude maps to −8, so
// d = that value / −8 (its sign kept) and q = min(15, ⌊x / d + 8.5⌋).
void quantize_q4_0(const float* x, BlockQ4_0& b) {
  float amax = 0, max = 0;
  for (int j = 0; j < kQuantBlock; ++j)
    if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
  const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
  b.d = float_to_f16(d);
  const auto level = [&](float v) { return static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(v * id + 8.5f))); };
  for (int j = 0; j < kQuantBlock / 2; ++j) b.qs[j] = static_cast<uint8_t>(level(x[j]) | (level(x[j + kQuantBlock / 2]) << 4));
}

void dequantize_q8_0(const BlockQ8_0& b, float* y) {
  const float d = f16_to_float(b.d);
  for (int j = 0; j < kQuantBlock; ++j) y[j] = b.qs[j] * d;
}

void dequantize_q4_0(const BlockQ4_0& b, float* y) {
  const float d = f16_to_float(b.d);
  for (int j = 0; j < kQuantBlock / 2; ++j) {
    y[j] = ((b.qs[j] & 0x0F) - 8) * d;
    y[j + kQuantBlock / 2] = ((b.qs[j] >> 4) - 8) * d;
  }
}

}  // namespace

void kv_store_rows(KvType t, const float* src, void* dst, int64_t rows, int head_dim) {
  const size_t n = size_t(rows) * size_t(head_dim);
  (void)kv_row_bytes(t, head_dim);  // refuses a head_dim the type cannot hold
  switch (t) {
    case KvType::F32: std::memcpy(dst, src, n * sizeof(float)); return;
    case KvType::F16: f32_to_f16(src, static_cast<uint16_t*>(dst), n); return;
    case KvType::Q8_0: {
      auto* b = static_cast<BlockQ8_0*>(dst);
      for (size_t i = 0; i < n / kQuantBlock; ++i) quantize_q8_0(src + i * kQuantBlock, b[i]);
      return;
    }
    case KvType::Q4_0: {
      auto* b = static_cast<BlockQ4_0*>(dst);
      for (size_t i = 0; i < n / kQuantBlock; ++i) quantize_q4_0(src + i * kQuantBlock, b[i]);
      return;
    }
  }
}

void kv_load_rows(KvType t, const void* src, float* dst, int64_t rows, int head_dim) {
  const size_t n = size_t(rows) * size_t(head_dim);
  (void)kv_row_bytes(t, head_dim);
  switch (t) {
    case KvType::F32: std::memcpy(dst, src, n * sizeof(float)); return;
    case KvType::F16: f16_to_f32(static_cast<const uint16_t*>(src), dst, n); return;
    case KvType::Q8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(src);
      for (size_t i = 0; i < n / kQuantBlock; ++i) dequantize_q8_0(b[i], dst + i * kQuantBlock);
      return;
    }
    case KvType::Q4_0: {
      const auto* b = static_cast<const BlockQ4_0*>(src);
      for (size_t i = 0; i < n / kQuantBlock; ++i) dequantize_q4_0(b[i], dst + i * kQuantBlock);
      return;
    }
  }
}

}  // namespace ropescale
