#include "ropescale/model/llama_ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>

#include "ropescale/kernels/small_batch_matmul.h"
#include "ropescale/kernels/thread_pool.h"

namespace ropescale {

void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

void matmul_shared_input(const float* x, std::initializer_list<MatmulTarget> targets, int n, int in, int threads) {
  single_threaded_blas();
  ThreadPool& pool = ThreadPool::global();
  const int t = pool.threads_for(threads);
  int total_out = 0;
  for (const auto& g : targets) total_out += g.out;
  const int64_t work = int64_t(n) * in * total_out;
  // A single token (decode) streams the weights once: splitting the rows lets
  // each core stream its share from its own cache, worth it from ~32 K weights.
  const bool few_rows = n <= kMaxSmallBatch;  // decode, or a batch of decode rows: weights streamed once
  const int64_t min_work = few_rows ? int64_t{1} << 15 : int64_t{1} << 20;
  const int parts = (t > 1 && work >= min_work && total_out >= 64) ? t : 1;
  pool.parallel_for(parts, [&](int i) {
    for (const auto& g : targets) {
      const int o0 = g.out * i / parts, o1 = g.out * (i + 1) / parts;
      if (o1 == o0) continue;
      const float* w = g.w->data() + int64_t(o0) * in;
      if (n == 1) {  // one token (decode): a matrix-vector product, no packing of W
        cblas_sgemv(CblasRowMajor, CblasNoTrans, o1 - o0, in, 1.0f, w, in, x, 1, 0.0f, g.y + o0, 1);
        continue;
      }
      if (few_rows) {  // a few rows (batched decode): each weight row read once, no packing either
        small_batch_matmul(x, n, w, o1 - o0, in, g.y + o0, g.out);
        continue;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, o1 - o0, in, 1.0f, x, in, w, in, 0.0f, g.y + o0, g.out);
    }
  });
}

void matmul(const float* x, const std::vector<float>& w, float* y, int n, int in, int out, int threads) {
  matmul_shared_input(x, {MatmulTarget{&w, y, out}}, n, in, threads);
}

void rmsnorm(const float* x, const std::vector<float>& w, float* y, int n, int dim, float eps, float* inv_rms) {
  for (int t = 0; t < n; ++t) {
    const float* xr = x + int64_t(t) * dim;
    float* yr = y + int64_t(t) * dim;
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / dim) + eps);
    if (inv_rms) inv_rms[t] = inv;
    for (int i = 0; i < dim; ++i) yr[i] = xr[i] * inv * w[i];
  }
}

}  // namespace ropescale
