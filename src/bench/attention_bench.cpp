#include "ropescale/bench/attention_bench.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>

#include "ropescale/kernels/convert.h"
#include "ropescale/kernels/dtype.h"
#include "ropescale/kernels/thread_pool.h"

namespace ropescale {

namespace {

// Median seconds per call of fn over repeats lasting at least min_seconds in all.
template <class F>
double median_seconds(F&& fn, double min_seconds) {
  using clock = std::chrono::steady_clock;
  std::vector<double> t;
  const auto start = clock::now();
  do {
    const auto a = clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(clock::now() - a).count());
  } while (t.size() < 3 || std::chrono::duration<double>(clock::now() - start).count() < min_seconds);
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

}  // namespace

double AttentionBenchResult::prefill_flops() const {
  const double T = double(c.tokens);
  return 4.0 * c.head_dim * c.n_heads * T * (T + 1) / 2;
}
double AttentionBenchResult::decode_flops() const { return 4.0 * c.head_dim * c.n_heads * double(c.tokens + 1); }

double sgemm_peak_gflops(int threads, double min_seconds, int n) {
  openblas_set_num_threads(1);  // the pool splits the columns, as the runtime's matmul does
  std::vector<float> a(size_t(n) * n), b(a.size()), c(a.size());
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto* x : {&a, &b})
    for (auto& e : *x) e = u(rng);
  ThreadPool& pool = ThreadPool::global();
  const int parts = pool.threads_for(threads);
  const double s = median_seconds(
      [&] {
        pool.parallel_for(parts, [&](int i) {
          const int c0 = n * i / parts, c1 = n * (i + 1) / parts;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, c1 - c0, n, 1.0f, a.data(), n, b.data() + size_t(c0) * n, n,
                      0.0f, c.data() + c0, n);
        });
      },
      min_seconds);
  return 2.0 * n * n * double(n) / s / 1e9;
}

std::vector<AttentionBenchResult> run_attention_bench(const std::vector<AttentionBenchCase>& cases, double min_seconds,
                                                      const std::function<void(const AttentionBenchResult&)>& progress) {
  std::map<int, double> peak;  // by threads
  std::vector<AttentionBenchResult> out;
  for (const auto& c : cases) {
    if (!peak.count(c.threads)) peak[c.threads] = sgemm_peak_gflops(c.threads, min_seconds);
    AttentionBenchResult r;
    r.c = c;
    r.peak_gflops = peak[c.threads];
    const int64_t T = c.tokens;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0, 1);
    std::vector<float> q(size_t(T) * c.n_heads * c.head_dim), k(size_t(T + 1) * c.n_kv_heads * c.head_dim), v(k.size()),
        o(q.size());
    for (auto* x : {&q, &k, &v})
      for (auto& e : *x) e = nd(rng);
    const int64_t rows = (T + 1) * c.n_kv_heads;
    std::vector<std::byte> kc(size_t(rows) * kv_row_bytes(c.kv, c.head_dim)), vc(kc.size());
    kv_store_rows(c.kv, k.data(), kc.data(), rows, c.head_dim);
    kv_store_rows(c.kv, v.data(), vc.data(), rows, c.head_dim);
    AttentionProblem p;
    p.n_heads = c.n_heads;
    p.n_kv_heads = c.n_kv_heads;
    p.head_dim = c.head_dim;
    p.k = kc.data();
    p.v = vc.data();
    p.k_type = p.v_type = c.kv;
    p.scale = 1.0f / std::sqrt(float(c.head_dim));
    p.q = q.data();
    p.out = o.data();
    p.n_queries = int(T);
    p.keys_before = 0;
    r.prefill_s = median_seconds([&] { attention(p, c.threads); }, min_seconds);
    p.n_queries = 1;
    p.keys_before = T;
    r.decode_s = median_seconds([&] { attention(p, c.threads); }, min_seconds);
    // As many exponentials as the prefill's scores, in tile-sized calls on one thread, scaled by the threads.
    std::vector<float> s(64);
    const double scores = double(c.n_heads) * T * (T + 1) / 2;
    const int64_t calls = std::max<int64_t>(1, int64_t(scores / 64 / std::max(1, c.threads)));
    r.exp_s = median_seconds(
        [&] {
          for (int64_t i = 0; i < calls; ++i) {
            std::fill(s.begin(), s.end(), -1.0f);
            exp_shifted(s.data(), s.size(), 0.5f);
          }
        },
        min_seconds);
    out.push_back(r);
    if (progress) progress(r);
  }
  return out;
}

}  // namespace ropescale
