// Attention benchmark cases shared by `ropescale bench attention` and the
// Google Benchmark suite: a causal prefill over T tokens and one decoded token
// after T, against the machine's f32 peak measured in the same run (OpenBLAS
// sgemm on a large square product, over the same threads).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ropescale/kernels/attention.h"

namespace ropescale {

struct AttentionBenchCase {
  int64_t tokens = 2048;
  int n_heads = 4, n_kv_heads = 2, head_dim = 32;  // the default model's attention
  KvType kv = KvType::F32;
  int threads = 1;
};

struct AttentionBenchResult {
  AttentionBenchCase c;
  double prefill_s = 0;   // one causal attention over `tokens` queries (median)
  double decode_s = 0;    // one query against `tokens` cached keys (median)
  double exp_s = 0;       // the prefill's exponentials alone: exp_shifted over as many scores
  double peak_gflops = 0; // sgemm on the same threads
  // FLOPs counted as 4 · head_dim per (query, key) pair and head: Q·K and P·V.
  double prefill_flops() const;
  double decode_flops() const;
  double prefill_gflops() const { return prefill_flops() / prefill_s / 1e9; }
  double decode_gflops() const { return decode_flops() / decode_s / 1e9; }
  double fraction_of_peak() const { return prefill_gflops() / peak_gflops; }
  double exp_share() const { return exp_s / prefill_s; }
};

// f32 sgemm GFLOP/s on `threads` (n × n × n, columns split over the pool).
double sgemm_peak_gflops(int threads, double min_seconds, int n = 1536);

std::vector<AttentionBenchResult> run_attention_bench(const std::vector<AttentionBenchCase>& cases, double min_seconds,
                                                      const std::function<void(const AttentionBenchResult&)>& progress = nullptr);

}  // namespace ropescale
