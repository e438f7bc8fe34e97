#include "ropescale/bench/rotary_bench.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <type_traits>

#include "ropescale/rope/frequencies.h"
#include "ropescale/kernels/thread_pool.h"

namespace ropescale {

const std::vector<RotaryBenchShape>& rotary_bench_shapes() {
  static const std::vector<RotaryBenchShape> shapes = {
      {"llama3-8b", 32, 8, 128, 128},
      {"qwen2.5-7b", 28, 4, 128, 128},
      {"phi4-mini-partial", 24, 8, 128, 96},
  };
  return shapes;
}

namespace {

// Element access for the naive baseline: f32 storage, or 16-bit storage with
// the same round-to-nearest-even conversions the kernels use.
template <DType DT>
using Storage = std::conditional_t<DT == DType::F32, float, uint16_t>;

template <DType DT>
float ld(const Storage<DT>* p, int64_t i) {
  if constexpr (DT == DType::F32) {
    return p[i];
  } else if constexpr (DT == DType::BF16) {
    return std::bit_cast<float>(static_cast<uint32_t>(p[i]) << 16);
  } else {
    return f16_to_float(p[i]);
  }
}

// Branchless round-to-nearest-even for bf16 (finite values, as in the benchmark),
// so the compiler can vectorize the baseline's passes like PyTorch's kernels are.
template <DType DT>
void st(Storage<DT>* p, int64_t i, float v) {
  if constexpr (DT == DType::F32) {
    p[i] = v;
  } else if constexpr (DT == DType::BF16) {
    const uint32_t bits = std::bit_cast<uint32_t>(v);
    p[i] = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  } else {
    p[i] = float_to_f16(v);
  }
}

// One tensor [T, H, hd] through HF's eager ops, each a full pass.
template <DType DT, class T = Storage<DT>>
void naive_tensor(T* x, int64_t tokens, int heads, int hd, int d, const float* cos_full, const float* sin_full, T* rot,
                  T* t1, T* t2, T* out) {
  const int half = d / 2;
  const int64_t rows = tokens * heads;
  // rotate_half(x) = cat(−x[d/2:], x[:d/2]) on the rotary part.
  for (int64_t r = 0; r < rows; ++r)
    for (int i = 0; i < d; ++i) st<DT>(rot, r * d + i, i < half ? -ld<DT>(x, r * hd + i + half) : ld<DT>(x, r * hd + i - half));
  // x·cos (cos broadcast over heads).
  for (int64_t r = 0; r < rows; ++r)
    for (int i = 0; i < d; ++i) st<DT>(t1, r * d + i, ld<DT>(x, r * hd + i) * cos_full[(r / heads) * d + i]);
  // rotate_half(x)·sin.
  for (int64_t r = 0; r < rows; ++r)
    for (int i = 0; i < d; ++i) st<DT>(t2, r * d + i, ld<DT>(rot, r * d + i) * sin_full[(r / heads) * d + i]);
  // sum (and, for partial rotary, cat with the pass-through tail).
  for (int64_t r = 0; r < rows; ++r) {
    for (int i = 0; i < d; ++i) st<DT>(out, r * hd + i, ld<DT>(t1, r * d + i) + ld<DT>(t2, r * d + i));
    for (int i = d; i < hd; ++i) out[r * hd + i] = x[r * hd + i];
  }
}

}  // namespace

RotaryBenchCase::RotaryBenchCase(const RotaryBenchShape& shape, int64_t tokens, DType dtype, PairLayout layout)
    : shape_(shape), tokens_(tokens), dtype_(dtype), layout_(layout) {
  std::mt19937_64 rng(42);
  // Positions of a prefill at the end of a long document (absolute, not from 0).
  const int64_t start = 100000;
  for (int64_t t = 0; t < tokens; ++t) positions_.push_back(start + t);
  RopeSpec s;
  s.type = RopeType::Yarn;
  s.rotary_dim = shape.rotary_dim;
  s.head_dim = shape.head_dim;
  s.theta = 500000;
  s.factor = 8;
  s.original_max_position = 8192;
  const auto f = compute_frequencies(s);
  table_ = build_cos_sin_table(f, start, start + tokens);
  const size_t es = dtype_size(dtype_);
  const int64_t nq = tokens * shape.q_heads * shape.head_dim, nk = tokens * shape.kv_heads * shape.head_dim;
  q_.resize(nq * es);
  k_.resize(nk * es);
  std::uniform_real_distribution<float> v(-1, 1);
  for (auto* b : {&q_, &k_}) {
    std::vector<float> values(b->size() / es);
    for (auto& x : values) x = v(rng);
    store_floats(dtype_, values.data(), b->data(), values.size());
  }
  copy_.resize(q_.size() + k_.size());
}

RotaryProblem RotaryBenchCase::problem() {
  RotaryProblem p;
  p.n_tokens = tokens_;
  p.positions = positions_.data();
  p.head_dim = shape_.head_dim;
  p.rotary_dim = shape_.rotary_dim;
  p.layout = layout_;
  const int64_t hd = shape_.head_dim;
  p.q = {q_.data(), dtype_, shape_.q_heads, shape_.q_heads * hd, hd};
  p.k = {k_.data(), dtype_, shape_.kv_heads, shape_.kv_heads * hd, hd};
  p.angles.table = &table_;
  return p;
}

double RotaryBenchCase::bytes_moved() const { return 2.0 * static_cast<double>(q_.size() + k_.size()); }

void RotaryBenchCase::run_memcpy(int threads) {
  const size_t nq = q_.size(), total = q_.size() + k_.size();
  auto copy_range = [&](size_t a, size_t b) {
    // Q then K, as one logical buffer.
    if (a < nq) std::memcpy(copy_.data() + a, q_.data() + a, std::min(b, nq) - a);
    if (b > nq) {
      const size_t s = std::max(a, nq);
      std::memcpy(copy_.data() + s, k_.data() + (s - nq), b - s);
    }
  };
  if (threads <= 1 || total < (1u << 20)) {
    copy_range(0, total);
    return;
  }
  ThreadPool::global().parallel_for(threads, [&](int i) { copy_range(total * i / threads, total * (i + 1) / threads); });
}

void RotaryBenchCase::run_naive() {
  const int d = shape_.rotary_dim, hd = shape_.head_dim;
  if (cos_full_.empty()) {
    // Materialized once per forward in HF (outside apply_rotary_pos_emb): emb = cat(freqs, freqs).
    cos_full_.resize(tokens_ * d);
    sin_full_.resize(tokens_ * d);
    for (int64_t t = 0; t < tokens_; ++t)
      for (int i = 0; i < d; ++i) {
        cos_full_[t * d + i] = table_.cos_at(positions_[t], i % (d / 2));
        sin_full_[t * d + i] = table_.sin_at(positions_[t], i % (d / 2));
      }
    const size_t es = dtype_ == DType::F32 ? 4 : 2;
    const int64_t rows = tokens_ * std::max(shape_.q_heads, shape_.kv_heads);
    rot_.resize(rows * d * es);
    t1_.resize(rows * d * es);
    t2_.resize(rows * d * es);
    out_.resize(rows * hd * es);
  }
  auto as = [](std::vector<uint8_t>& v, auto* type_tag) { return reinterpret_cast<decltype(type_tag)>(v.data()); };
  auto run = [&](auto dt_constant) {
    constexpr DType DT = decltype(dt_constant)::value;
    using T = Storage<DT>;
    T* tag = nullptr;
    naive_tensor<DT>(as(q_, tag), tokens_, shape_.q_heads, hd, d, cos_full_.data(), sin_full_.data(), as(rot_, tag),
                     as(t1_, tag), as(t2_, tag), as(out_, tag));
    naive_tensor<DT>(as(k_, tag), tokens_, shape_.kv_heads, hd, d, cos_full_.data(), sin_full_.data(), as(rot_, tag),
                     as(t1_, tag), as(t2_, tag), as(out_, tag));
  };
  switch (dtype_) {
    case DType::F32: run(std::integral_constant<DType, DType::F32>{}); break;
    case DType::BF16: run(std::integral_constant<DType, DType::BF16>{}); break;
    case DType::F16: run(std::integral_constant<DType, DType::F16>{}); break;
  }
}

void RotaryBenchCase::run_optimized(int threads) { apply_rotary(problem(), threads); }

namespace {

// Seconds per call of each function: the median of 7 rounds, where one round
// times every function in turn (repeated calls adding up to ≥ min_seconds / 7
// each). Interleaving makes a busy neighbour or a clock change hit the kernel
// and its baselines alike, so their ratios stay meaningful on a shared VM.
std::vector<double> time_calls(const std::vector<std::function<void()>>& fs, double min_seconds) {
  using clock = std::chrono::steady_clock;
  constexpr int kRounds = 7;
  const double slice = min_seconds / kRounds;
  std::vector<int64_t> iters(fs.size(), 1);
  for (size_t k = 0; k < fs.size(); ++k) {
    fs[k]();  // warm up (page faults, caches, lazily built buffers)
    for (;;) {
      const auto t0 = clock::now();
      for (int64_t i = 0; i < iters[k]; ++i) fs[k]();
      const double s = std::chrono::duration<double>(clock::now() - t0).count();
      if (s >= slice || iters[k] >= (int64_t{1} << 30)) break;
      iters[k] = s <= 0 ? iters[k] * 10
                        : std::max<int64_t>(iters[k] * 2, static_cast<int64_t>(iters[k] * slice / s * 1.2));
    }
  }
  std::vector<std::vector<double>> samples(fs.size());
  for (int r = 0; r < kRounds; ++r)
    for (size_t k = 0; k < fs.size(); ++k) {
      const auto t0 = clock::now();
      for (int64_t i = 0; i < iters[k]; ++i) fs[k]();
      samples[k].push_back(std::chrono::duration<double>(clock::now() - t0).count() / static_cast<double>(iters[k]));
    }
  std::vector<double> medians;
  for (auto& v : samples) {
    std::nth_element(v.begin(), v.begin() + kRounds / 2, v.end());
    medians.push_back(v[kRounds / 2]);
  }
  return medians;
}

}  // namespace

std::vector<RotaryBenchResult> run_rotary_bench(const RotaryBenchOptions& o,
                                                const std::function<void(const RotaryBenchResult&)>& progress) {
  std::vector<RotaryBenchResult> out;
  for (const auto& shape : rotary_bench_shapes())
    for (DType dt : o.dtypes)
      for (int64_t tokens : o.tokens)
        for (int threads : o.threads) {
          RotaryBenchCase c(shape, tokens, dt);
          RotaryBenchResult r;
          r.shape = shape.name;
          r.dtype = dt;
          r.tokens = tokens;
          r.threads = threads;
          r.bytes = c.bytes_moved();
          const auto seconds = time_calls({[&] { c.run_memcpy(threads); }, [&] { c.run_optimized(threads); },
                                           [&] { c.run_naive(); }},
                                          o.min_seconds);
          r.memcpy_s = seconds[0];
          r.optimized_s = seconds[1];
          r.naive_s = seconds[2];
          out.push_back(r);
          if (progress) progress(r);
        }
  return out;
}

}  // namespace ropescale
