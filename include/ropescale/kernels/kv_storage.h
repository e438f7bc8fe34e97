// How a KV cache stores its rows: f32, f16, or ggml's quantized blocks q8_0 and
// q4_0 (32 values and one f16 scale per block, the layouts llama.cpp's
// --cache-type-k/-v use). One row is the head_dim values of one token and one
// KV head; a layer's cache is [tokens][kv_heads] rows, row (i, g) at byte
// (i · kv_heads + g) · kv_row_bytes(type, head_dim).
//
// The byte counts here are the ones the runtime allocates, the server admits by
// and `plan` reports: one function, so a prediction cannot drift from the cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ropescale {

enum class KvType { F32, F16, Q8_0, Q4_0 };

std::string_view to_string(KvType t);
// "f32", "f16", "q8_0", "q4_0" (as llama.cpp spells them); nullopt otherwise.
std::optional<KvType> parse_kv_type(std::string_view name);
inline constexpr std::string_view kKvTypeNames = "f32, f16, q8_0, q4_0";

inline constexpr int kQuantBlock = 32;  // values per q8_0 / q4_0 block
// ggml's block_q8_0: scale d (f16), 32 signed values; x ≈ d · q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQuantBlock];
};
// ggml's block_q4_0: scale d (f16), 32 4-bit values, byte j holding value j
// (low nibble) and value j + 16 (high nibble); x ≈ d · (nibble − 8).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQuantBlock / 2];
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18, "ggml block layouts are packed");

bool is_quantized(KvType t);
// Whether rows of `head_dim` values can be stored as `t` (quantized types need
// whole blocks: head_dim a multiple of 32, as in llama.cpp).
bool kv_type_fits(KvType t, int head_dim);
// Bytes of one row; throws std::invalid_argument when the type does not fit.
size_t kv_row_bytes(KvType t, int head_dim);
// Bytes of K and V for `tokens` tokens over every layer: what a session allocates.
size_t kv_cache_bytes(KvType t, int layers, int kv_heads, int head_dim, int64_t tokens);

// `rows` rows of `head_dim` floats into storage (f16 rounded to nearest even;
// q8_0 / q4_0 quantized exactly as ggml's reference quantize_row_*_ref), and back.
void kv_store_rows(KvType t, const float* src, void* dst, int64_t rows, int head_dim);
void kv_load_rows(KvType t, const void* src, float* dst, int64_t rows, int head_dim);

}  // namespace ropescale
