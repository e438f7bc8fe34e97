// Internal to the kernels: the unit of work of the optimized attention and
// the online-softmax state it leaves, shared by the SIMD block kernel
// (attention_simd.cpp) and the scheduler that splits a problem into blocks
// and merges their partial results (attention.cpp).
#pragma once

#include <cstdint>

#include "ropescale/kernels/attention.h"

namespace ropescale::detail {

// The queries [t0, t1) of every query head that shares KV head `kv_head`,
// against the keys [key_begin, key_end) — each row's causal limit applied on
// top. Row r is query t0 + r / group of head kv_head · group + r % group, so
// one load of a key or value serves every row of the block.
struct AttentionBlock {
  int kv_head = 0;
  int t0 = 0, t1 = 0;
  int64_t key_begin = 0, key_end = 0;
  int rows(int group) const { return (t1 - t0) * group; }
};

// A block's softmax state, unnormalized: the attention output of row r is
// o[r] / l[r]. Rows that saw no key keep m = kNoScore, l = 0, o = 0, so
// partial states over disjoint key ranges merge by the usual rescaling.
struct AttentionPartial {
  float* o = nullptr;  // [rows][head_dim]
  float* m = nullptr;  // [rows] running maximum of the scaled scores
  float* l = nullptr;  // [rows] Σ exp(score − m)
};

inline constexpr float kNoScore = -1e30f;
inline constexpr int kKeyTile = 64;  // keys per tile: scores of a block stay in L1

// The dispatched SIMD kernel (best target chosen at run time).
void attend_block(const AttentionProblem& p, const AttentionBlock& b, const AttentionPartial& out);
// Adds to p.key_weight[j], for keys [key_begin, key_end) (whole tiles from a multiple of kKeyTile),
// the softmax weight every query head gave key j, from the rows' finished log-sum-exps lse.
void accumulate_key_weights(const AttentionProblem& p, const float* lse, int64_t key_begin, int64_t key_end);

}  // namespace ropescale::detail
