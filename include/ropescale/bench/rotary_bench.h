// Rotary benchmark cases shared by `ropescale bench rope` and the Google
// Benchmark suite (bench/rotary_benchmark.cpp): realistic shapes, the memcpy
// ceiling and a straightforward baseline measured in the same run.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ropescale/kernels/rotary.h"

namespace ropescale {

struct RotaryBenchShape {
  std::string name;
  int q_heads = 0, kv_heads = 0, head_dim = 0, rotary_dim = 0;
};

// Llama-3-8B (32 + 8 × 128), Qwen2.5-7B (28 + 4 × 128), Phi-4-mini partial
// rotary (24 + 8 × 128, rotary 96).
const std::vector<RotaryBenchShape>& rotary_bench_shapes();

// Q and K buffers, positions and the cos/sin table for one case.
class RotaryBenchCase {
 public:
  RotaryBenchCase(const RotaryBenchShape& shape, int64_t tokens, DType dtype, PairLayout layout = PairLayout::HalfSplit);
  RotaryProblem problem();  // in place on q/k
  // Bytes read + written by an in-place rotation of Q and K (= memcpy of Q+K).
  double bytes_moved() const;
  // memcpy of the Q+K bytes into a second buffer, split over `threads`.
  void run_memcpy(int threads);
  // The reference Python way (HF apply_rotary_pos_emb, eager): cos/sin
  // materialized as [tokens, d] (cat(freqs, freqs)), rotate_half materialized,
  // then q·cos and rotate_half(q)·sin as separate passes and their sum; each
  // intermediate stored in the activation dtype; partial rotary re-concatenates
  // the pass-through tail. Single-threaded.
  void run_naive();
  void run_optimized(int threads);

 private:
  RotaryBenchShape shape_;
  int64_t tokens_;
  DType dtype_;
  PairLayout layout_;
  std::vector<int64_t> positions_;
  CosSinTable table_;
  std::vector<uint8_t> q_, k_, copy_;
  std::vector<float> cos_full_, sin_full_;        // naive: [tokens, d]
  std::vector<uint8_t> rot_, t1_, t2_, out_;      // naive intermediates
};

struct RotaryBenchResult {
  std::string shape;
  DType dtype = DType::F32;
  int64_t tokens = 0;
  int threads = 1;
  double bytes = 0;
  double memcpy_s = 0, naive_s = 0, optimized_s = 0;  // seconds per call (median of repeats)
  double fraction_of_memcpy() const { return memcpy_s / optimized_s; }
  double speedup_vs_naive() const { return naive_s / optimized_s; }
};

struct RotaryBenchOptions {
  std::vector<int64_t> tokens = {1, 16, 512, 8192};
  std::vector<DType> dtypes = {DType::F32, DType::BF16};
  std::vector<int> threads = {1};
  double min_seconds = 0.2;  // per measurement
};

// Runs every shape × dtype × tokens × threads; `progress` (may be null) is
// called with a line per finished case.
std::vector<RotaryBenchResult> run_rotary_bench(const RotaryBenchOptions& options,
                                                const std::function<void(const RotaryBenchResult&)>& progress = nullptr);

}  // namespace ropescale
