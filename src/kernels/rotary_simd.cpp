// Optimized apply_rotary: Highway SIMD, compiled for several targets, the best
// chosen at run time (HWY_DYNAMIC_DISPATCH). One source for every ISA.
//
// Per token the cos/sin row (d/2 floats) is fetched or computed once and
// reused across all Q and K heads. Half-split pairs are two contiguous runs;
// interleaved pairs use rows expanded to d floats (cos duplicated, sin as
// −s, +s) so that out = x·cos + swap_adjacent(x)·sin.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/rotary_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "ropescale/kernels/rotary.h"
#include "rotary_rows.h"

HWY_BEFORE_NAMESPACE();
namespace ropescale {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// ---- loads and stores of f32 lanes from f32 / f16 / bf16 storage ----------
HWY_INLINE hn::Vec<DF> LoadF(DF d, const float* p) { return hn::LoadU(d, p); }
HWY_INLINE hn::Vec<DF> LoadF(DF d, const hwy::bfloat16_t* p) {
  return hn::PromoteTo(d, hn::LoadU(hn::Rebind<hwy::bfloat16_t, DF>(), p));
}
HWY_INLINE hn::Vec<DF> LoadF(DF d, const hwy::float16_t* p) {
  return hn::PromoteTo(d, hn::LoadU(hn::Rebind<hwy::float16_t, DF>(), p));
}
HWY_INLINE void StoreF(DF d, hn::Vec<DF> v, float* p) { hn::StoreU(v, d, p); }
HWY_INLINE void StoreF(DF d, hn::Vec<DF> v, hwy::bfloat16_t* p) {
  // Round to nearest even (Highway 1.0's DemoteTo truncates): bits + 0x7fff + lsb.
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<uint16_t, DF> du16;
  auto bits = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u));
  bits = hn::ShiftRight<16>(hn::Add(bits, hn::Add(hn::Set(du, 0x7fffu), lsb)));
  hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di, bits)), du16, reinterpret_cast<uint16_t*>(p));
  (void)d;
}
HWY_INLINE void StoreF(DF d, hn::Vec<DF> v, hwy::float16_t* p) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  hn::StoreU(hn::DemoteTo(dh, v), dh, p);
  (void)d;
}

template <class T>
constexpr DType kDType = std::is_same_v<T, float> ? DType::F32 : std::is_same_v<T, hwy::bfloat16_t> ? DType::BF16 : DType::F16;

// Pair j = (x[j], x[j + half]).
template <class T>
HWY_INLINE void RotateHalfSplit(const T* src, T* dst, const float* c, const float* s,
                                int half) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d));
  int j = 0;
  for (; j + N <= half; j += N) {
    const auto x0 = LoadF(d, src + j), x1 = LoadF(d, src + half + j);
    const auto vc = hn::LoadU(d, c + j), vs = hn::LoadU(d, s + j);
    const auto o0 = hn::MulSub(x0, vc, hn::Mul(x1, vs));  // x0·c − x1·s
    const auto o1 = hn::MulAdd(x1, vc, hn::Mul(x0, vs));  // x1·c + x0·s
    StoreF(d, o0, dst + j);
    StoreF(d, o1, dst + half + j);
  }
  for (; j < half; ++j) {
    const float x0 = detail::load_scalar(src, kDType<T>, j), x1 = detail::load_scalar(src, kDType<T>, j + half);
    detail::store_scalar(dst, kDType<T>, j, x0 * c[j] - x1 * s[j]);
    detail::store_scalar(dst, kDType<T>, j + half, x1 * c[j] + x0 * s[j]);
  }
}

// Pair j = (x[2j], x[2j+1]); ci/si are the expanded rows (length d).
template <class T>
HWY_INLINE void RotateInterleaved(const T* src, T* dst, const float* ci, const float* si, int dim) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d));
  int i = 0;
  if (N >= 2) {
    for (; i + N <= dim; i += N) {
      const auto x = LoadF(d, src + i);
      const auto swapped = hn::Reverse2(d, x);  // (x1, x0, x3, x2, …)
      StoreF(d, hn::MulAdd(x, hn::LoadU(d, ci + i), hn::Mul(swapped, hn::LoadU(d, si + i))), dst + i);
    }
  }
  for (; i < dim; i += 2) {
    const float x0 = detail::load_scalar(src, kDType<T>, i), x1 = detail::load_scalar(src, kDType<T>, i + 1);
    const float c = ci[i], s = si[i + 1];
    detail::store_scalar(dst, kDType<T>, i, x0 * c - x1 * s);
    detail::store_scalar(dst, kDType<T>, i + 1, x1 * c + x0 * s);
  }
}

template <class T>
void RotateTensor(const RotaryProblem& p, const RotaryTensor& in, const RotaryTensor& out_or_null, int64_t t,
                  const float* c, const float* s) {
  const RotaryTensor& out = out_or_null.data ? out_or_null : in;
  const T* src_base = static_cast<const T*>(in.data);
  T* dst_base = static_cast<T*>(out.data);
  const bool copy_tail = out.data != in.data && p.rotary_dim < p.head_dim;
  for (int h = 0; h < in.n_heads; ++h) {
    const T* src = src_base + t * in.token_stride + h * in.head_stride;
    T* dst = dst_base + t * out.token_stride + h * out.head_stride;
    if (p.layout == PairLayout::HalfSplit)
      RotateHalfSplit(src, dst, c, s, p.rotary_dim / 2);
    else
      RotateInterleaved(src, dst, c, s, p.rotary_dim);
    if (copy_tail) std::memcpy(dst + p.rotary_dim, src + p.rotary_dim, (p.head_dim - p.rotary_dim) * sizeof(T));
  }
}

template <class T>
void RotateTokens(const RotaryProblem& p, int64_t t0, int64_t t1) {
  const int pairs = p.rotary_dim / 2;
  // Scratch: on-the-fly row (2·pairs) and expanded interleaved rows (2·d).
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(2 * pairs + 2 * p.rotary_dim));
  float* row_scratch = scratch.data();
  float* ci = row_scratch + 2 * pairs;
  float* si = ci + p.rotary_dim;
  for (int64_t t = t0; t < t1; ++t) {
    const auto row = detail::angle_row(p.angles, p.positions[t], pairs, row_scratch);
    const float* c = row.cos;
    const float* s = row.sin;
    if (p.layout == PairLayout::Interleaved) {
      for (int j = 0; j < pairs; ++j) {
        ci[2 * j] = ci[2 * j + 1] = row.cos[j];
        si[2 * j] = -row.sin[j];
        si[2 * j + 1] = row.sin[j];
      }
      c = ci;
      s = si;
    }
    if (p.q.n_heads) RotateTensor<T>(p, p.q, p.q_out, t, c, s);
    if (p.k.n_heads) RotateTensor<T>(p, p.k, p.k_out, t, c, s);
  }
}

void RotateRange(const RotaryProblem& p, int64_t t0, int64_t t1) {
  const DType dt = p.q.n_heads ? p.q.dtype : p.k.dtype;
  switch (dt) {
    case DType::F32: RotateTokens<float>(p, t0, t1); break;
    case DType::BF16: RotateTokens<hwy::bfloat16_t>(p, t0, t1); break;
    case DType::F16: RotateTokens<hwy::float16_t>(p, t0, t1); break;
  }
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace ropescale
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <stdexcept>
#include <thread>

#include "thread_pool.h"

namespace ropescale {

HWY_EXPORT(RotateRange);
HWY_EXPORT(TargetName);

std::string rotary_simd_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

void apply_rotary(const RotaryProblem& p, int threads) {
  validate(p);
  if (p.n_tokens == 0) return;
  if (p.q.n_heads && p.k.n_heads && p.q.dtype != p.k.dtype)
    throw std::invalid_argument("apply_rotary: q and k must share a dtype");
  const auto fn = [](const RotaryProblem& q, int64_t t0, int64_t t1) { HWY_DYNAMIC_DISPATCH(RotateRange)(q, t0, t1); };
  // Threads pay off only for batches that take longer than waking them (≈ tens of µs).
  const int64_t work = p.n_tokens * static_cast<int64_t>(p.q.n_heads + p.k.n_heads) * p.rotary_dim;
  ThreadPool& pool = ThreadPool::global();
  const int n = std::clamp(threads > 0 ? threads : pool.size(), 1, pool.size());
  if (n == 1 || work < (int64_t{1} << 18) || p.n_tokens < 2) {
    fn(p, 0, p.n_tokens);
    return;
  }
  const int chunks = static_cast<int>(std::min<int64_t>(n, p.n_tokens));
  pool.parallel_for(chunks, [&](int i) {
    const int64_t t0 = p.n_tokens * i / chunks, t1 = p.n_tokens * (i + 1) / chunks;
    fn(p, t0, t1);
  });
}

}  // namespace ropescale
#endif  // HWY_ONCE
