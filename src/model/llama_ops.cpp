#include "ropescale/model/llama_ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>

#include "ropescale/kernels/thread_pool.h"

namespace ropescale {

void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

void matmul(const float* x, const std::vector<float>& w, float* y, int n, int in, int out, int threads) {
  single_threaded_blas();
  ThreadPool& pool = ThreadPool::global();
  const int t = pool.threads_for(threads);
  const int64_t work = int64_t(n) * in * out;
  // A single token (decode) streams the weights once: splitting the rows lets
  // each core stream its half from its own cache, worth it from ~32 K weights.
  const int64_t min_work = n == 1 ? int64_t{1} << 15 : int64_t{1} << 20;
  const int parts = (t > 1 && work >= min_work && out >= 64) ? t : 1;
  pool.parallel_for(parts, [&](int i) {
    const int o0 = out * i / parts, o1 = out * (i + 1) / parts;
    if (n == 1) {  // one token (decode): a matrix-vector product, no packing of W
      cblas_sgemv(CblasRowMajor, CblasNoTrans, o1 - o0, in, 1.0f, w.data() + int64_t(o0) * in, in, x, 1, 0.0f, y + o0, 1);
      return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, o1 - o0, in, 1.0f, x, in, w.data() + int64_t(o0) * in, in,
                0.0f, y + o0, out);
  });
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
