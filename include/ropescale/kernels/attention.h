// Causal grouped-query attention over a KV cache, for a chunk of queries.
// Memory is O(keys): no score matrix is materialized (online softmax over key
// tiles), so 16K-token contexts cost memory proportional to n.
//
// out[t,h] = Σ_i softmax_i(scale · q[t,h]·k[i,g]) v[i,g],  g = h / (H / KV),
// over keys i = 0 … keys_before + t (query t sits at position keys_before + t).
// With quantized keys (q8_0, q4_0) the query is first rounded to q8_0 blocks, as
// ggml's CPU attention does: each block's score is then d_q · d_k · Σ q_i k_i over
// integers, which decode computes with 16-bit integer multiply-adds.
#pragma once

#include <cstdint>
#include <string>

#include "ropescale/kernels/kv_storage.h"

namespace ropescale {

struct AttentionProblem {
  int n_queries = 0;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t keys_before = 0;     // keys already in the cache before this chunk
  const float* q = nullptr;    // [n_queries][n_heads][head_dim], rotated
  const void* k = nullptr;     // [keys_before + n_queries][n_kv_heads] rows of k_type (kv_storage.h), rotated
  const void* v = nullptr;     // same layout as k, rows of v_type
  KvType k_type = KvType::F32;
  KvType v_type = KvType::F32;
  float scale = 1.0f;          // usually 1/sqrt(head_dim)
  float* out = nullptr;        // [n_queries][n_heads][head_dim]
  // Optional [n_queries][n_heads]: log Σ_i exp(scale · q·k_i) over the keys each query saw — what
  // merges attentions over disjoint key sets (merge_attention).
  float* lse = nullptr;
  // Optional [keys_before + n_queries]: key_weight[i] += Σ_{t,h} softmax weight of key i in query t's
  // head h — the accumulated attention H2O evicts by. The optimized kernel takes a decode step's from
  // the softmax numerators it computes anyway (kept per key, rescaled by the finished log-sum-exps);
  // a prefill chunk's it recomputes against those log-sum-exps (O(keys) memory, no score matrix).
  float* key_weight = nullptr;
};

// Merges two attentions of the same queries over disjoint keys, given each one's output and
// log-sum-exp: out = (e^lse_a · a + e^lse_b · b) / (e^lse_a + e^lse_b), row by row (rows of head_dim).
void merge_attention(const float* a, const float* lse_a, const float* b, const float* lse_b, float* out, int64_t rows,
                     int head_dim);

// Plain twin: all scores of one query, max, exp, normalize, weighted sum — in double,
// over rows dequantized by kv_load_rows (and, for quantized keys, the query rounded to q8_0 and back).
void attention_scalar(const AttentionProblem& p);
// Optimized: Highway SIMD blocks (all query heads of a KV group × a run of
// queries against 64-key tiles, online softmax), threads over blocks, and over
// key ranges with a merge of the partial softmax sums when blocks are fewer
// than threads (decode). Quantized rows are read block by block: decode folds
// each block's scale into its dot product and its softmax weight, prefill
// dequantizes one 64-key tile at a time into L1 — never the whole cache.
// threads: 0 = the pool's size.
void attention(const AttentionProblem& p, int threads = 0);
// The SIMD target the dispatcher chose on this CPU ("AVX2", "AVX3", …).
std::string attention_simd_target();

}  // namespace ropescale
