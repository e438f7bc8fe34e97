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

#include <algorithm>
#include <type_traits>

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

// ---- bf16 as pairs of lanes: 2N bf16 = N u32 lanes; bits << 16 is the f32 of
// the even element, bits & 0xffff0000 the f32 of the odd one. No shuffles.
using DU = hn::RebindToUnsigned<DF>;
HWY_INLINE void LoadBf16EvenOdd(DF df, const hwy::bfloat16_t* p, hn::Vec<DF>& even, hn::Vec<DF>& odd) {
  const DU du;
  const auto raw = hn::LoadU(du, reinterpret_cast<const uint32_t*>(p));
  even = hn::BitCast(df, hn::ShiftLeft<16>(raw));
  odd = hn::BitCast(df, hn::And(raw, hn::Set(du, 0xffff0000u)));
}
// f32 bits rounded to nearest even at bit 16 (finite inputs): bits + 0x7fff + lsb.
HWY_INLINE hn::Vec<DU> RoundedBf16Bits(DU du, hn::Vec<DF> v) {
  const auto bits = hn::BitCast(du, v);
  return hn::Add(bits, hn::Add(hn::Set(du, 0x7fffu), hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u))));
}
HWY_INLINE void StoreBf16EvenOdd(DF, hn::Vec<DF> even, hn::Vec<DF> odd, hwy::bfloat16_t* p) {
  const DU du;
  const auto e = hn::ShiftRight<16>(RoundedBf16Bits(du, even));
  const auto o = hn::And(RoundedBf16Bits(du, odd), hn::Set(du, 0xffff0000u));
  hn::StoreU(hn::Or(e, o), du, reinterpret_cast<uint32_t*>(p));
}

template <class T>
constexpr DType kDType = std::is_same_v<T, float> ? DType::F32 : std::is_same_v<T, hwy::bfloat16_t> ? DType::BF16 : DType::F16;

// All kernels below rotate one token's heads. The pair-block loop is outside
// the head loop: the cos/sin vectors of a block are loaded once and stay in
// registers for every head (they are shared by all heads of a token).
struct Heads {
  int64_t src_stride, dst_stride;  // elements between heads
  int count;
};

template <class T>
HWY_INLINE void ScalarPair(const T* src, T* dst, int i0, int i1, float c, float s) {
  const float x0 = detail::load_scalar(src, kDType<T>, i0), x1 = detail::load_scalar(src, kDType<T>, i1);
  detail::store_scalar(dst, kDType<T>, i0, x0 * c - x1 * s);
  detail::store_scalar(dst, kDType<T>, i1, x1 * c + x0 * s);
}

// Half-split, pairs [start, half): pair j = (x[j], x[j + half]).
template <class T>
HWY_INLINE void RotateHalfSplit(const T* src, T* dst, const Heads& hs, const float* c, const float* s, int half,
                                int start) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d));
  int j = start;
  for (; j + N <= half; j += N) {
    const auto vc = hn::LoadU(d, c + j), vs = hn::LoadU(d, s + j);
    for (int h = 0; h < hs.count; ++h) {
      const T* x = src + h * hs.src_stride;
      T* y = dst + h * hs.dst_stride;
      const auto x0 = LoadF(d, x + j), x1 = LoadF(d, x + half + j);
      StoreF(d, hn::MulSub(x0, vc, hn::Mul(x1, vs)), y + j);         // x0·c − x1·s
      StoreF(d, hn::MulAdd(x1, vc, hn::Mul(x0, vs)), y + half + j);  // x1·c + x0·s
    }
  }
  for (; j < half; ++j)
    for (int h = 0; h < hs.count; ++h) ScalarPair(src + h * hs.src_stride, dst + h * hs.dst_stride, j, j + half, c[j], s[j]);
}

// Interleaved f32/f16: pair j = (x[2j], x[2j+1]); ci/si are the expanded rows
// (cos duplicated, sin as −s, +s) so that out = x·ci + swap_adjacent(x)·si.
template <class T>
HWY_INLINE void RotateInterleaved(const T* src, T* dst, const Heads& hs, const float* ci, const float* si, int dim) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d));
  int i = 0;
  if (N >= 2) {
    for (; i + N <= dim; i += N) {
      const auto vc = hn::LoadU(d, ci + i), vs = hn::LoadU(d, si + i);
      for (int h = 0; h < hs.count; ++h) {
        const auto x = LoadF(d, src + h * hs.src_stride + i);
        StoreF(d, hn::MulAdd(x, vc, hn::Mul(hn::Reverse2(d, x), vs)), dst + h * hs.dst_stride + i);
      }
    }
  }
  for (; i < dim; i += 2)
    for (int h = 0; h < hs.count; ++h) ScalarPair(src + h * hs.src_stride, dst + h * hs.dst_stride, i, i + 1, ci[i], si[i + 1]);
}

// bf16 half-split: 2N pairs per block as even/odd lanes; ce/co/se/so are the
// row split into even- and odd-indexed pairs. The remainder (< 2N pairs) goes
// through the N-lane path above.
HWY_INLINE void RotateHalfSplitBf16(const hwy::bfloat16_t* src, hwy::bfloat16_t* dst, const Heads& hs, const float* c,
                                    const float* s, const float* ce, const float* co, const float* se, const float* so,
                                    int half) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d));
  int j = 0;
  for (; j + 2 * N <= half; j += 2 * N) {
    const auto vce = hn::LoadU(d, ce + j / 2), vco = hn::LoadU(d, co + j / 2);
    const auto vse = hn::LoadU(d, se + j / 2), vso = hn::LoadU(d, so + j / 2);
    for (int h = 0; h < hs.count; ++h) {
      const hwy::bfloat16_t* x = src + h * hs.src_stride;
      hwy::bfloat16_t* y = dst + h * hs.dst_stride;
      hn::Vec<DF> x0e, x0o, x1e, x1o;
      LoadBf16EvenOdd(d, x + j, x0e, x0o);
      LoadBf16EvenOdd(d, x + half + j, x1e, x1o);
      StoreBf16EvenOdd(d, hn::MulSub(x0e, vce, hn::Mul(x1e, vse)), hn::MulSub(x0o, vco, hn::Mul(x1o, vso)), y + j);
      StoreBf16EvenOdd(d, hn::MulAdd(x1e, vce, hn::Mul(x0e, vse)), hn::MulAdd(x1o, vco, hn::Mul(x0o, vso)), y + half + j);
    }
  }
  RotateHalfSplit(src, dst, hs, c, s, half, j);
}

// bf16 interleaved: the even lanes are the pairs' x0, the odd lanes their x1,
// so the plain cos/sin row applies directly.
HWY_INLINE void RotateInterleavedBf16(const hwy::bfloat16_t* src, hwy::bfloat16_t* dst, const Heads& hs, const float* c,
                                      const float* s, int pairs) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d));
  int j = 0;
  for (; j + N <= pairs; j += N) {
    const auto vc = hn::LoadU(d, c + j), vs = hn::LoadU(d, s + j);
    for (int h = 0; h < hs.count; ++h) {
      hn::Vec<DF> x0, x1;
      LoadBf16EvenOdd(d, src + h * hs.src_stride + 2 * j, x0, x1);
      StoreBf16EvenOdd(d, hn::MulSub(x0, vc, hn::Mul(x1, vs)), hn::MulAdd(x1, vc, hn::Mul(x0, vs)),
                       dst + h * hs.dst_stride + 2 * j);
    }
  }
  for (; j < pairs; ++j)
    for (int h = 0; h < hs.count; ++h)
      ScalarPair(src + h * hs.src_stride, dst + h * hs.dst_stride, 2 * j, 2 * j + 1, c[j], s[j]);
}

// Per-token rows: the plain row, and the layout/dtype-specific arrangement
// (expanded for interleaved f32/f16, even/odd split for half-split bf16).
struct Rows {
  const float* c;
  const float* s;
  const float* ce = nullptr;
  const float* co = nullptr;
  const float* se = nullptr;
  const float* so = nullptr;
};

template <class T>
void RotateTensor(const RotaryProblem& p, const RotaryTensor& in, const RotaryTensor& out_or_null, int64_t t,
                  const Rows& r) {
  const RotaryTensor& out = out_or_null.data ? out_or_null : in;
  const T* src = static_cast<const T*>(in.data) + t * in.token_stride;
  T* dst = static_cast<T*>(out.data) + t * out.token_stride;
  const int half = p.rotary_dim / 2;
  // Groups of kGroup heads: cos/sin vectors are reused kGroup times from
  // registers, while memory is still walked in small contiguous windows that
  // the hardware prefetcher follows (all heads at once defeats it from DRAM).
  constexpr int kGroup = 8;
  for (int h0 = 0; h0 < in.n_heads; h0 += kGroup) {
    const Heads hs{in.head_stride, out.head_stride, std::min(kGroup, in.n_heads - h0)};
    const T* gs = src + h0 * in.head_stride;
    T* gd = dst + h0 * out.head_stride;
    if constexpr (std::is_same_v<T, hwy::bfloat16_t>) {
      if (p.layout == PairLayout::HalfSplit)
        RotateHalfSplitBf16(gs, gd, hs, r.c, r.s, r.ce, r.co, r.se, r.so, half);
      else
        RotateInterleavedBf16(gs, gd, hs, r.c, r.s, half);
    } else {
      if (p.layout == PairLayout::HalfSplit)
        RotateHalfSplit(gs, gd, hs, r.c, r.s, half, 0);
      else
        RotateInterleaved(gs, gd, hs, r.ce, r.se, p.rotary_dim);
    }
  }
  if (out.data != in.data && p.rotary_dim < p.head_dim)  // out of place: copy the pass-through tail
    for (int h = 0; h < in.n_heads; ++h)
      std::memcpy(dst + h * out.head_stride + p.rotary_dim, src + h * in.head_stride + p.rotary_dim,
                  (p.head_dim - p.rotary_dim) * sizeof(T));
}

template <class T>
void RotateTokens(const RotaryProblem& p, int64_t t0, int64_t t1) {
  const int pairs = p.rotary_dim / 2;
  constexpr bool kBf16 = std::is_same_v<T, hwy::bfloat16_t>;
  // Scratch: the on-the-fly row (2·pairs) and the arranged rows (2·d).
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(2 * pairs + 2 * p.rotary_dim + 8));
  float* row_scratch = scratch.data();
  float* a = row_scratch + 2 * pairs;  // arranged cos (d floats)
  float* b = a + p.rotary_dim;         // arranged sin (d floats)
  for (int64_t t = t0; t < t1; ++t) {
    const auto row = detail::angle_row(p.angles, p.positions[t], pairs, row_scratch);
    Rows r{row.cos, row.sin};
    if (kBf16 && p.layout == PairLayout::HalfSplit) {
      // Even- and odd-indexed pairs, each contiguous: ce | co, se | so.
      const int n_even = (pairs + 1) / 2;
      for (int j = 0; j < pairs; ++j) {
        (j % 2 ? a + n_even : a)[j / 2] = row.cos[j];
        (j % 2 ? b + n_even : b)[j / 2] = row.sin[j];
      }
      r.ce = a, r.co = a + n_even, r.se = b, r.so = b + n_even;
    } else if (!kBf16 && p.layout == PairLayout::Interleaved) {
      // Expanded: cos duplicated, sin as (−s, +s), so out = x·cos + swap(x)·sin.
      for (int j = 0; j < pairs; ++j) {
        a[2 * j] = a[2 * j + 1] = row.cos[j];
        b[2 * j] = -row.sin[j];
        b[2 * j + 1] = row.sin[j];
      }
      r.ce = a, r.se = b;
    }
    if (p.q.n_heads) RotateTensor<T>(p, p.q, p.q_out, t, r);
    if (p.k.n_heads) RotateTensor<T>(p, p.k, p.k_out, t, r);
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

#include "ropescale/kernels/thread_pool.h"

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
  const int n = pool.threads_for(threads);
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
