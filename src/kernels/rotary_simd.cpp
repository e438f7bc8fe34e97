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

// ---- bf16 through the CPU's own conversion (AVX512_BF16: Zen 4, Cooper Lake,
// Sapphire Rapids). Highway 1.0.3 — Debian 12's — has neither this conversion
// nor a 16-bit lane permute (its AVX3_ZEN4 target and TableLookupLanes for u16
// came later), so those two operations are written out here; everything else
// stays Highway. VCVTNE2PS2BF16 rounds to nearest even like float_to_bf16,
// except that it flushes f32 subnormals (|x| < 2^-126) to ±0. Chosen at run
// time (HasNativeBf16); otherwise the shift-and-round path above is used.
struct NativeBf16 {
  uint16_t bits;
};
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define ROPESCALE_NATIVE_BF16 1
bool HasNativeBf16() {
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has && detail::native_bf16_enabled();
}
HWY_INLINE hn::Vec<DF> LoadF(DF d, const NativeBf16* p) { return LoadF(d, reinterpret_cast<const hwy::bfloat16_t*>(p)); }
HWY_INLINE void StoreF(DF, hn::Vec<DF> v, NativeBf16* p) {
  __m256i packed;
  asm("vcvtneps2bf16 %1, %0" : "=v"(packed) : "v"(v.raw));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), packed);
}
HWY_INLINE void LoadBf16EvenOdd(DF d, const NativeBf16* p, hn::Vec<DF>& even, hn::Vec<DF>& odd) {
  LoadBf16EvenOdd(d, reinterpret_cast<const hwy::bfloat16_t*>(p), even, odd);
}
// Both halves converted by one instruction into [even | odd], then put back in
// memory order (e0 o0 e1 o1 …) by one permute.
HWY_INLINE void StoreBf16EvenOdd(DF, hn::Vec<DF> even, hn::Vec<DF> odd, NativeBf16* p) {
  alignas(64) static constexpr uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                           8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  __m512i packed;  // low 16 lanes from `even`, high 16 from `odd`
  asm("vcvtne2ps2bf16 %2, %1, %0" : "=v"(packed) : "v"(odd.raw), "v"(even.raw));
  const __m512i order = _mm512_load_si512(kInterleave);
  _mm512_storeu_si512(p, _mm512_permutexvar_epi16(order, packed));
}
#endif

template <class T>
constexpr DType kDType = std::is_same_v<T, float>             ? DType::F32
                         : std::is_same_v<T, hwy::float16_t> ? DType::F16
                                                             : DType::BF16;
template <class T>
constexpr bool kIsBf16 = std::is_same_v<T, hwy::bfloat16_t> || std::is_same_v<T, NativeBf16>;

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

// The row rearranged for RotateHalfSplitBf16: per block of 2N pairs, its
// even-indexed values, then its odd-indexed ones — the lanes LoadBf16EvenOdd
// produces (whole blocks only).
HWY_INLINE void ArrangeRowEvenOdd(const float* row, int pairs, float* arranged) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d));
  for (int j = 0; j + 2 * N <= pairs; j += 2 * N) {
#if HWY_TARGET == HWY_SCALAR
    const auto even = hn::Set(d, row[j]), odd = hn::Set(d, row[j + 1]);
#else
    const auto lo = hn::LoadU(d, row + j), hi = hn::LoadU(d, row + j + N);
    const auto even = hn::ConcatEven(d, hi, lo), odd = hn::ConcatOdd(d, hi, lo);
#endif
    hn::StoreU(even, d, arranged + j);
    hn::StoreU(odd, d, arranged + j + N);
  }
}

// bf16 half-split: 2N pairs per block as even/odd lanes; ce/se are the rows
// arranged by ArrangeRowEvenOdd. The remainder (< 2N pairs) goes through the
// N-lane path above with the plain rows c/s.
template <class T>
HWY_INLINE void RotateHalfSplitBf16(const T* src, T* dst, const Heads& hs, const float* c, const float* s,
                                    const float* ce, const float* se, int half) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d));
  int j = 0;
  for (; j + 2 * N <= half; j += 2 * N) {
    const auto vce = hn::LoadU(d, ce + j), vco = hn::LoadU(d, ce + j + N);
    const auto vse = hn::LoadU(d, se + j), vso = hn::LoadU(d, se + j + N);
    for (int h = 0; h < hs.count; ++h) {
      const T* x = src + h * hs.src_stride;
      T* y = dst + h * hs.dst_stride;
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
template <class T>
HWY_INLINE void RotateInterleavedBf16(const T* src, T* dst, const Heads& hs, const float* c,
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

// Per-token rows: the plain row, and the layout/dtype-specific arrangement:
// expanded for interleaved f32/f16 (cos duplicated, sin as −s, +s), even/odd
// per block for half-split bf16.
struct Rows {
  const float* c;
  const float* s;
  const float* ce = nullptr;
  const float* se = nullptr;
};

template <class T>
void RotateTensor(const RotaryProblem& p, const RotaryTensor& in, const RotaryTensor& out_or_null, int64_t t,
                  const Rows& r) {
  const RotaryTensor& out = out_or_null.data ? out_or_null : in;
  const T* src = static_cast<const T*>(in.data) + t * in.token_stride;
  T* dst = static_cast<T*>(out.data) + t * out.token_stride;
  const int half = p.rotary_dim / 2;
  // Groups of kGroup heads: cos/sin vectors are reused kGroup times from
  // registers, while memory is walked in windows of a few KiB that the
  // hardware prefetcher follows (all heads at once defeats it from DRAM; 8
  // heads of bf16 were measured 15–20 % slower from L3 than 16).
  constexpr int kGroup = 16;
  for (int h0 = 0; h0 < in.n_heads; h0 += kGroup) {
    const Heads hs{in.head_stride, out.head_stride, std::min(kGroup, in.n_heads - h0)};
    const T* gs = src + h0 * in.head_stride;
    T* gd = dst + h0 * out.head_stride;
    if constexpr (kIsBf16<T>) {
      if (p.layout == PairLayout::HalfSplit)
        RotateHalfSplitBf16(gs, gd, hs, r.c, r.s, r.ce, r.se, half);
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
  constexpr bool kBf16 = kIsBf16<T>;
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
      ArrangeRowEvenOdd(row.cos, pairs, a);
      ArrangeRowEvenOdd(row.sin, pairs, b);
      r.ce = a, r.se = b;
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
    case DType::BF16:
#ifdef ROPESCALE_NATIVE_BF16
      if (HasNativeBf16()) {
        RotateTokens<NativeBf16>(p, t0, t1);
        break;
      }
#endif
      RotateTokens<hwy::bfloat16_t>(p, t0, t1);
      break;
    case DType::F16: RotateTokens<hwy::float16_t>(p, t0, t1); break;
  }
}

const char* TargetName() {
#ifdef ROPESCALE_NATIVE_BF16
  if (HasNativeBf16()) return HWY_TARGET == HWY_AVX3 ? "AVX3+BF16" : "AVX3_DL+BF16";
#endif
  return hwy::TargetName(HWY_TARGET);
}
#undef ROPESCALE_NATIVE_BF16  // this file is compiled once per target

}  // namespace HWY_NAMESPACE
}  // namespace ropescale
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <thread>

#include "ropescale/kernels/thread_pool.h"

namespace ropescale {

namespace detail {
namespace {
std::atomic<bool> g_native_bf16{true};
}
void set_native_bf16_enabled(bool enabled) { g_native_bf16.store(enabled); }
bool native_bf16_enabled() { return g_native_bf16.load(std::memory_order_relaxed); }
}  // namespace detail

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
