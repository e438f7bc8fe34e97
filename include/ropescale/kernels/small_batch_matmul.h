// y[b][o] = Σ_i x[b][i] · w[o][i] for a handful of input rows b — the decode
// step of a batch of sequences (continuous batching), or a tiny chunk. Each
// weight row is read once for all the inputs and nothing is packed: OpenBLAS's
// sgemm packs W on every call, which for a few rows costs more than the
// products (measured: 2 rows slower than two matrix-vector products). SIMD
// with runtime dispatch, and a plain scalar twin the tests compare it with.
#pragma once

namespace ropescale {

constexpr int kMaxSmallBatch = 8;

// x: n × in (row-major), w: rows × in, y: n rows of stride ldy (y[b·ldy + o]); 1 ≤ n ≤ kMaxSmallBatch.
void small_batch_matmul(const float* x, int n, const float* w, int rows, int in, float* y, int ldy);
void small_batch_matmul_scalar(const float* x, int n, const float* w, int rows, int in, float* y, int ldy);

}  // namespace ropescale
