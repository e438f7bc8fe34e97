// Internal to the kernels: the unit of work of the optimized attention and
// the online-softmax state it leaves, shared by the SIMD block kernel
// (attention_simd.cpp) and the scheduler that splits a problem into blocks
// and merges their partial results (attention.cpp).
#pragma once

#include <cstdint>

#include "ropescale/kernels/attention.h"

namespace ropescale::detail {

// The queries [t0, t1) of every query head that shares one of the KV heads
// [kv_head, kv_head + kv_heads), against the keys [key_begin, key_end) — each
// row's causal limit applied on top. Rows are grouped by KV head: row r belongs
// to KV head kv_head + r / rows_per_head and is query t0 + (r mod rows_per_head) / group
// of query head · group + r mod group, so one load of a key or value serves every
// row of its KV head. Decode blocks take every KV head: the heads' rows of one token
// share cache lines (two 34-byte q8_0 rows fill most of a 64-byte line), so a pass
// over a tile that serves all heads reads each line once.
struct AttentionBlock {
  int kv_head = 0, kv_heads = 1;
  int t0 = 0, t1 = 0;
  int64_t key_begin = 0, key_end = 0;
  int rows_per_head(int group) const { return (t1 - t0) * group; }
  int rows(int group) const { return rows_per_head(group) * kv_heads; }
  int query(int r, int group) const { return t0 + r % rows_per_head(group) / group; }
  int head(int r, int group) const { return (kv_head + r / rows_per_head(group)) * group + r % group; }
};

// Blocks with at most this many rows per KV head take every KV head (decode, short chunks).
inline constexpr int kAllHeadsRows = 8;

// A block's softmax state, unnormalized: the attention output of row r is
// o[r] / l[r]. Rows that saw no key keep m = kNoScore, l = 0, o = 0, so
// partial states over disjoint key ranges merge by the usual rescaling.
struct AttentionPartial {
  float* o = nullptr;  // [rows][head_dim]
  float* m = nullptr;  // [rows] running maximum of the scaled scores
  float* l = nullptr;  // [rows] Σ exp(score − m)
  // Optional, shared by every block of a problem (decode: a few rows): the softmax numerators as the
  // kernel met them, for H2O's key weights without a second pass over the keys. Row (t, h) — query t,
  // head h — keeps exp(score − m) of key j at exps[(t · n_heads + h) · exp_keys + j] and the m of key
  // tile i (the running maximum when that tile was scored) at tile_m[(t · n_heads + h) · tiles + i].
  // Blocks write disjoint rows or key ranges; keys past a row's causal limit are left unwritten.
  float* exps = nullptr;
  float* tile_m = nullptr;
  int64_t exp_keys = 0;
};

inline constexpr float kNoScore = -1e30f;
inline constexpr int kKeyTile = 64;  // keys per tile: scores of a block stay in L1

// The query a key of type k_type is scored against, written to `out` (head_dim floats): q itself,
// or — quantized keys — q rounded to q8_0 blocks and back, as ggml's CPU attention rounds the query
// to q8_0 (the vec_dot type of q8_0 and q4_0) so that each block's dot product is d_q·d_k·Σ q_i·k_i
// over integers. Every path (twin, prefill, decode, key weights) scores with it.
void query_for_keys(KvType k_type, const float* q, float* out, int head_dim);

// The dispatched SIMD kernel (best target chosen at run time). Returns whether it recorded out.exps /
// out.tile_m (the narrow, decode-shaped path does; the wide one leaves them to accumulate_key_weights).
bool attend_block(const AttentionProblem& p, const AttentionBlock& b, const AttentionPartial& out);
// Adds to p.key_weight[j], for keys [key_begin, key_end) (whole tiles from a multiple of kKeyTile),
// the softmax weight every query head gave key j, from the rows' finished log-sum-exps lse.
void accumulate_key_weights(const AttentionProblem& p, const float* lse, int64_t key_begin, int64_t key_end);

}  // namespace ropescale::detail
