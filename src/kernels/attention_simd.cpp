// The optimized attention block kernel: Highway SIMD compiled for several
// targets, the best chosen at run time (HWY_DYNAMIC_DISPATCH).
//
// A block is every query head of one KV group for a run of queries (rows),
// against tiles of kKeyTile keys; one online-softmax state per row. Two
// shapes of the same arithmetic:
//
// - Wide (rows ≥ 2 vectors; prefill): everything is vectorized over ROWS.
//   Q is transposed once per block into Qᵀ[c][r] (scale folded in), so
//       Sᵀ[j][r] = Σ_c K[j][c] · Qᵀ[c][r]      (K elements broadcast)
//       Oᵀ[c][r] = α[r] · Oᵀ[c][r] + Σ_j V[j][c] · Pᵀ[j][r]
//   are register-blocked 4 keys (or 4 channels) × 2 row vectors: each K or V
//   element is loaded once per tile and used by every row of the block, no
//   horizontal sums, and the softmax (max, exp, sum, rescale) runs on whole
//   vectors of rows. K and V are read straight from the cache in f32, or a
//   tile converted from f16 (or dequantized from q8_0 / q4_0) into L1. Tiles past the block's last query are
//   never touched; only tiles crossing the diagonal are masked.
// - Narrow (a few rows; decode): vectorized over CHANNELS for the dot
//   products and over KEYS for the softmax, so a single query does not pay
//   for a padded vector of rows. Quantized rows are read in place: a block's
//   integers are widened in registers, its scale multiplies the block's
//   partial dot product and, for values, the softmax weight.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/attention_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "softmax_exp-inl.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "attention_block.h"
#include "ropescale/kernels/dtype.h"
#include "ropescale/kernels/kv_storage.h"

HWY_BEFORE_NAMESPACE();
namespace ropescale {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

namespace attention_impl {  // per-target helpers, apart from the other kernels' in this namespace

using DF = hn::ScalableTag<float>;
using detail::kKeyTile;
using detail::kNoScore;
constexpr float kMasked = -std::numeric_limits<float>::max();  // exp(kMasked − m) = 0 for any m ≥ kNoScore

struct Scratch {
  std::vector<float> qt, ot, st, m, l, alpha, kbuf, vbuf;
  std::vector<int32_t> pos;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// ---- storage readers --------------------------------------------------------
// One row of the cache is head_dim values stored as T: float, float16_t, or
// kQuantBlock-value blocks (BlockQ8_0 / BlockQ4_0). Load(d, row, c) gives values
// [c, c + Lanes(d)) as f32 — for blocks, the integers before the scale, so the
// lanes must not straddle a block (Lanes ≤ 16 divides 32) —; Scale(row, c) is the
// factor they carry (1 for float types); kValues values per element of T.
template <typename T> inline constexpr int kValues = 1;
template <> inline constexpr int kValues<BlockQ8_0> = kQuantBlock;
template <> inline constexpr int kValues<BlockQ4_0> = kQuantBlock;
template <typename T> inline constexpr bool kScaled = kValues<T> > 1;

template <class D>
HWY_INLINE hn::Vec<D> Load(D d, const float* row, int c) {
  return hn::LoadU(d, row + c);
}
template <class D>
HWY_INLINE hn::Vec<D> Load(D d, const hwy::float16_t* row, int c) {
  return hn::PromoteTo(d, hn::LoadU(hn::Rebind<hwy::float16_t, D>(), row + c));
}
template <class D>
HWY_INLINE hn::Vec<D> Load(D d, const BlockQ8_0* row, int c) {
  const hn::Rebind<int32_t, D> di;
  const hn::Rebind<int8_t, D> d8;
  return hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, row[c / kQuantBlock].qs + c % kQuantBlock)));
}
template <class D>
HWY_INLINE hn::Vec<D> Load(D d, const BlockQ4_0* row, int c) {
  const hn::Rebind<int32_t, D> di;
  const hn::Rebind<uint8_t, D> d8;
  const int j = c % kQuantBlock;  // values j < 16 are low nibbles of byte j, the rest high nibbles of byte j − 16
  auto nib = hn::BitCast(di, hn::PromoteTo(hn::Rebind<uint32_t, D>(), hn::LoadU(d8, row[c / kQuantBlock].qs + j % 16)));
  if (j >= 16) nib = hn::ShiftRight<4>(nib);
  return hn::ConvertTo(d, hn::Sub(hn::And(nib, hn::Set(di, 15)), hn::Set(di, 8)));
}

// f16 → f32 for a block's scale (finite by construction): the bits moved into f32's
// exponent and mantissa fields, rescaled by 2^112 — exact for normals and subnormals.
HWY_INLINE float ScaleOf(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h & 0x7fffu) << 13;
  float f;
  std::memcpy(&f, &bits, 4);
  f *= 0x1p112f;
  return (h & 0x8000u) ? -f : f;
}
template <typename T>
HWY_INLINE float Scale(const T* row, int c) {
  if constexpr (kScaled<T>) return ScaleOf(row[c / kQuantBlock].d);
  else return 1.0f;
}

// Rows [j0, j0 + n) of one KV head as f32 with a row stride: a pointer into
// an f32 cache, or the tile converted (f16) or dequantized (q8_0, q4_0) into `buf`.
struct TileRows {
  const float* p;
  int64_t stride;
  const float* row(int j) const { return p + j * stride; }
};
template <typename T>
void ConvertTile(const char* first_row, int64_t row_stride_bytes, int n, int hd, float* buf) {
  const hn::CappedTag<float, 16> d;  // ≤ 16 lanes: within one quantized block
  const int N = static_cast<int>(hn::Lanes(d));
  for (int j = 0; j < n; ++j) {
    const T* src = reinterpret_cast<const T*>(first_row + j * row_stride_bytes);
    float* dst = buf + size_t(j) * hd;
    if constexpr (kScaled<T>) {
      for (int c = 0; c < hd; c += N) hn::StoreU(hn::Mul(Load(d, src, c), hn::Set(d, Scale(src, c))), d, dst + c);
    } else {
      int c = 0;
      for (; c + N <= hd; c += N) hn::StoreU(Load(d, src, c), d, dst + c);
      for (; c < hd; ++c) dst[c] = f16_to_float(reinterpret_cast<const uint16_t*>(src)[c]);
    }
  }
}
TileRows tile_rows(const void* base, KvType type, int64_t j0, int n, int n_kv_heads, int kv_head, int hd,
                   std::vector<float>& buf) {
  const int64_t row_bytes = static_cast<int64_t>(kv_row_bytes(type, hd)), stride = n_kv_heads * row_bytes;
  const char* first = static_cast<const char*>(base) + (j0 * n_kv_heads + kv_head) * row_bytes;
  if (type == KvType::F32) return {reinterpret_cast<const float*>(first), int64_t(n_kv_heads) * hd};
  buf.resize(size_t(n) * hd);
  switch (type) {
    case KvType::F16: ConvertTile<hwy::float16_t>(first, stride, n, hd, buf.data()); break;
    case KvType::Q8_0: ConvertTile<BlockQ8_0>(first, stride, n, hd, buf.data()); break;
    case KvType::Q4_0: ConvertTile<BlockQ4_0>(first, stride, n, hd, buf.data()); break;
    case KvType::F32: break;
  }
  return {buf.data(), hd};
}

// ---- wide blocks: vectorized over rows ------------------------------------

// Sᵀ[jj][·] for keys jj … jj+NK−1 and row vectors rv, rv+1.
template <int NK>
HWY_INLINE void ScoreKeys(DF d, const TileRows& k, int jj, const float* qt, int rp, int rv, int hd, float* st) {
  const size_t N = hn::Lanes(d);
  hn::Vec<DF> acc[NK][2];
  for (int i = 0; i < NK; ++i) acc[i][0] = acc[i][1] = hn::Zero(d);
  const float* kr[NK];
  for (int i = 0; i < NK; ++i) kr[i] = k.row(jj + i);
  for (int c = 0; c < hd; ++c) {
    const float* qc = qt + size_t(c) * rp + rv * N;
    const auto q0 = hn::LoadU(d, qc), q1 = hn::LoadU(d, qc + N);
    for (int i = 0; i < NK; ++i) {
      const auto kc = hn::Set(d, kr[i][c]);
      acc[i][0] = hn::MulAdd(kc, q0, acc[i][0]);
      acc[i][1] = hn::MulAdd(kc, q1, acc[i][1]);
    }
  }
  for (int i = 0; i < NK; ++i) {
    float* s = st + size_t(jj + i) * rp + rv * N;
    hn::StoreU(acc[i][0], d, s);
    hn::StoreU(acc[i][1], d, s + N);
  }
}

// Oᵀ[c … c+NC−1][rv, rv+1] = α · Oᵀ + Σ_jj V[jj][c] · Pᵀ[jj].
template <int NC>
HWY_INLINE void AccumulateValues(DF d, const TileRows& v, int n, int c, const float* st, const float* alpha, int rp,
                                 int rv, float* ot) {
  const size_t N = hn::Lanes(d);
  const auto a0 = hn::LoadU(d, alpha + rv * N), a1 = hn::LoadU(d, alpha + rv * N + N);
  hn::Vec<DF> acc[NC][2];
  for (int i = 0; i < NC; ++i) {
    const float* o = ot + size_t(c + i) * rp + rv * N;
    acc[i][0] = hn::Mul(hn::LoadU(d, o), a0);
    acc[i][1] = hn::Mul(hn::LoadU(d, o + N), a1);
  }
  for (int jj = 0; jj < n; ++jj) {
    const float* pr = st + size_t(jj) * rp + rv * N;
    const auto p0 = hn::LoadU(d, pr), p1 = hn::LoadU(d, pr + N);
    const float* vr = v.row(jj) + c;
    for (int i = 0; i < NC; ++i) {
      const auto vc = hn::Set(d, vr[i]);
      acc[i][0] = hn::MulAdd(vc, p0, acc[i][0]);
      acc[i][1] = hn::MulAdd(vc, p1, acc[i][1]);
    }
  }
  for (int i = 0; i < NC; ++i) {
    float* o = ot + size_t(c + i) * rp + rv * N;
    hn::StoreU(acc[i][0], d, o);
    hn::StoreU(acc[i][1], d, o + N);
  }
}

void AttendWide(const AttentionProblem& p, const detail::AttentionBlock& b, const detail::AttentionPartial& out) {
  const DF d;
  const hn::RebindToSigned<DF> di;
  const int N = static_cast<int>(hn::Lanes(d));
  const int group = p.n_heads / p.n_kv_heads, hd = p.head_dim, rows = b.rows(group);
  const int rv_count = (rows + 2 * N - 1) / (2 * N) * 2, rp = rv_count * N;  // padded rows
  Scratch& s = scratch();
  s.qt.assign(size_t(hd) * rp, 0.0f);
  s.ot.assign(size_t(hd) * rp, 0.0f);
  s.st.resize(size_t(kKeyTile) * rp);
  s.m.assign(rp, kNoScore);
  s.l.assign(rp, 0.0f);
  s.alpha.resize(rp);
  s.pos.assign(rp, -1);  // padding rows see no key
  for (int r = 0; r < rows; ++r) {
    const int t = b.t0 + r / group, h = b.kv_head * group + r % group;
    const float* q = p.q + (int64_t(t) * p.n_heads + h) * hd;
    for (int c = 0; c < hd; ++c) s.qt[size_t(c) * rp + r] = q[c] * p.scale;
    s.pos[r] = static_cast<int32_t>(p.keys_before + t);
  }
  const int64_t first_pos = p.keys_before + b.t0, last_pos = p.keys_before + b.t1 - 1;
  const int64_t key_end = std::min(b.key_end, last_pos + 1);
  for (int64_t j0 = b.key_begin; j0 < key_end; j0 += kKeyTile) {
    const int n = static_cast<int>(std::min<int64_t>(kKeyTile, key_end - j0));
    const TileRows k = tile_rows(p.k, p.k_type, j0, n, p.n_kv_heads, b.kv_head, hd, s.kbuf);
    const TileRows v = tile_rows(p.v, p.v_type, j0, n, p.n_kv_heads, b.kv_head, hd, s.vbuf);
    for (int rv = 0; rv < rv_count; rv += 2) {
      int jj = 0;
      for (; jj + 4 <= n; jj += 4) ScoreKeys<4>(d, k, jj, s.qt.data(), rp, rv, hd, s.st.data());
      for (; jj < n; ++jj) ScoreKeys<1>(d, k, jj, s.qt.data(), rp, rv, hd, s.st.data());
    }
    // Causal mask, only on the tile that crosses the diagonal.
    for (int jj = std::max<int64_t>(0, first_pos + 1 - j0); jj < n; ++jj) {
      const auto key = hn::Set(di, static_cast<int32_t>(j0 + jj));
      for (int rv = 0; rv < rv_count; ++rv) {
        float* sp = s.st.data() + size_t(jj) * rp + rv * N;
        const auto beyond = hn::RebindMask(d, hn::Lt(hn::LoadU(di, s.pos.data() + rv * N), key));
        hn::StoreU(hn::IfThenElse(beyond, hn::Set(d, kMasked), hn::LoadU(d, sp)), d, sp);
      }
    }
    // Online softmax, a vector of rows at a time.
    for (int rv = 0; rv < rv_count; ++rv) {
      float* col = s.st.data() + rv * N;
      auto mx = hn::LoadU(d, col);
      for (int jj = 1; jj < n; ++jj) mx = hn::Max(mx, hn::LoadU(d, col + size_t(jj) * rp));
      const auto m_old = hn::LoadU(d, s.m.data() + rv * N);
      const auto m_new = hn::Max(m_old, mx);
      auto sum = hn::Zero(d);
      for (int jj = 0; jj < n; ++jj) {
        const auto e = softmax::SoftmaxExp(d, hn::Sub(hn::LoadU(d, col + size_t(jj) * rp), m_new));
        hn::StoreU(e, d, col + size_t(jj) * rp);
        sum = hn::Add(sum, e);
      }
      const auto alpha = softmax::SoftmaxExp(d, hn::Sub(m_old, m_new));
      hn::StoreU(alpha, d, s.alpha.data() + rv * N);
      hn::StoreU(hn::MulAdd(hn::LoadU(d, s.l.data() + rv * N), alpha, sum), d, s.l.data() + rv * N);
      hn::StoreU(m_new, d, s.m.data() + rv * N);
    }
    for (int rv = 0; rv < rv_count; rv += 2) {
      int c = 0;
      for (; c + 4 <= hd; c += 4) AccumulateValues<4>(d, v, n, c, s.st.data(), s.alpha.data(), rp, rv, s.ot.data());
      for (; c < hd; ++c) AccumulateValues<1>(d, v, n, c, s.st.data(), s.alpha.data(), rp, rv, s.ot.data());
    }
  }
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < hd; ++c) out.o[size_t(r) * hd + c] = s.ot[size_t(c) * rp + r];
    out.m[r] = s.m[r];
    out.l[r] = s.l[r];
  }
}

// ---- narrow blocks: vectorized over channels and keys -----------------------

#if HWY_TARGET != HWY_SCALAR  // one-lane vectors have no blocks to interleave
// The lanes of each 128-bit block summed across blocks: 4 lanes left.
template <class D>
HWY_INLINE hn::Vec<hn::CappedTag<float, 4>> SumBlocks(D, hn::Vec<D> v) {
  if constexpr (hn::MaxLanes(D()) <= 4) {
    return v;
  } else {
    const hn::Half<D> dh;
    return SumBlocks(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  }
}

// Four dot products' accumulators → their four sums, lane i = Σ lanes of a_i
// (a 4 × 4 transpose by interleaving, instead of four horizontal reductions).
template <class D>
HWY_INLINE hn::Vec<hn::CappedTag<float, 4>> Sum4(D d, hn::Vec<D> a0, hn::Vec<D> a1, hn::Vec<D> a2, hn::Vec<D> a3) {
  const hn::Repartition<uint64_t, D> du;
  const auto ab = hn::Add(hn::InterleaveLower(d, a0, a1), hn::InterleaveUpper(d, a0, a1));  // a0₀+a0₂ a1₀+a1₂ a0₁+a0₃ a1₁+a1₃
  const auto cd = hn::Add(hn::InterleaveLower(d, a2, a3), hn::InterleaveUpper(d, a2, a3));
  const auto lo = hn::InterleaveLower(du, hn::BitCast(du, ab), hn::BitCast(du, cd));
  const auto hi = hn::InterleaveUpper(du, hn::BitCast(du, ab), hn::BitCast(du, cd));
  return SumBlocks(d, hn::Add(hn::BitCast(d, lo), hn::BitCast(d, hi)));
}
#endif

// D: the channel vectors (a capped tag when head_dim is not a multiple of the
// full vector), TK / TV: the storage of keys and values (float, float16_t,
// BlockQ8_0, BlockQ4_0): the same, or f32 keys rotated at read beside stored values.
template <class D, typename TK, typename TV>
void AttendNarrow(D dc, const AttentionProblem& p, const detail::AttentionBlock& b, const detail::AttentionPartial& out) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d)), NC = static_cast<int>(hn::Lanes(dc));
  const int group = p.n_heads / p.n_kv_heads, hd = p.head_dim, rows = b.rows(group);
  // Strides in elements of TK / TV; `span`: the key channels that share one scale (a block, or the whole row).
  const int64_t k_stride = int64_t(p.n_kv_heads) * hd / kValues<TK>, v_stride = int64_t(p.n_kv_heads) * hd / kValues<TV>;
  const int span = kScaled<TK> ? kQuantBlock : hd;
  // Channel vectors per pass over the keys when accumulating values: four, or (quantized) as many as one block holds.
  constexpr int kGroup = kScaled<TV> ? std::max<int>(1, std::min<int>(4, kQuantBlock / static_cast<int>(hn::MaxLanes(D())))) : 4;
  const TK* kbase = static_cast<const TK*>(p.k) + int64_t(b.kv_head) * hd / kValues<TK>;
  const TV* vbase = static_cast<const TV*>(p.v) + int64_t(b.kv_head) * hd / kValues<TV>;
  Scratch& s = scratch();
  s.qt.resize(size_t(rows) * hd);  // row-major here: scaled query rows
  s.st.resize(size_t(rows) * kKeyTile);
  for (int r = 0; r < rows; ++r) {
    const int t = b.t0 + r / group, h = b.kv_head * group + r % group;
    const float* q = p.q + (int64_t(t) * p.n_heads + h) * hd;
    for (int c = 0; c < hd; ++c) s.qt[size_t(r) * hd + c] = q[c] * p.scale;
    std::fill(out.o + size_t(r) * hd, out.o + size_t(r + 1) * hd, 0.0f);
    out.m[r] = kNoScore;
    out.l[r] = 0.0f;
  }
  const int64_t last_pos = p.keys_before + b.t1 - 1;
  const int64_t key_end = std::min(b.key_end, last_pos + 1);
  for (int64_t j0 = b.key_begin; j0 < key_end; j0 += kKeyTile) {
    const int n = static_cast<int>(std::min<int64_t>(kKeyTile, key_end - j0));
    const TK* k = kbase + j0 * k_stride;
    const TV* v = vbase + j0 * v_stride;
    for (int r = 0; r < rows; ++r) {
      const int64_t pos = p.keys_before + b.t0 + r / group;
      const float* q = s.qt.data() + size_t(r) * hd;
      float* sr = s.st.data() + size_t(r) * kKeyTile;
      int jj = 0;
#if HWY_TARGET != HWY_SCALAR
      if constexpr (hn::MaxLanes(D()) >= 4) {
        for (; jj + 4 <= n; jj += 4) {
          hn::Vec<D> a[4];
          const TK* kr[4];
          for (int i = 0; i < 4; ++i) a[i] = hn::Zero(dc), kr[i] = k + (jj + i) * k_stride;
          for (int c0 = 0; c0 < hd; c0 += span) {
            hn::Vec<D> t[4];
            for (int i = 0; i < 4; ++i) t[i] = hn::Zero(dc);
            for (int c = c0; c < c0 + span; c += NC) {
              const auto qv = hn::LoadU(dc, q + c);
              for (int i = 0; i < 4; ++i) t[i] = hn::MulAdd(qv, Load(dc, kr[i], c), t[i]);
            }
            for (int i = 0; i < 4; ++i) {
              if constexpr (kScaled<TK>) a[i] = hn::MulAdd(t[i], hn::Set(dc, Scale(kr[i], c0)), a[i]);
              else a[i] = t[i];  // one span: the whole row
            }
          }
          hn::StoreU(Sum4(dc, a[0], a[1], a[2], a[3]), hn::CappedTag<float, 4>(), sr + jj);
        }
      }
#endif
      for (; jj < n; ++jj) {
        const TK* kr = k + jj * k_stride;
        float dot = 0;
        for (int c0 = 0; c0 < hd; c0 += span) {
          auto acc = hn::Zero(dc);
          for (int c = c0; c < c0 + span; c += NC) acc = hn::MulAdd(hn::LoadU(dc, q + c), Load(dc, kr, c), acc);
          dot += Scale(kr, c0) * hn::GetLane(hn::SumOfLanes(dc, acc));
        }
        sr[jj] = dot;
      }
      for (jj = static_cast<int>(std::max<int64_t>(0, pos + 1 - j0)); jj < kKeyTile; ++jj) sr[jj] = kMasked;
      auto mxv = hn::LoadU(d, sr);
      for (jj = N; jj < kKeyTile; jj += N) mxv = hn::Max(mxv, hn::LoadU(d, sr + jj));
      const float m_new = std::max(out.m[r], hn::GetLane(hn::MaxOfLanes(d, mxv)));
      const auto mv = hn::Set(d, m_new);
      auto sum = hn::Zero(d);
      for (jj = 0; jj < kKeyTile; jj += N) {
        const auto e = softmax::SoftmaxExp(d, hn::Sub(hn::LoadU(d, sr + jj), mv));
        hn::StoreU(e, d, sr + jj);
        sum = hn::Add(sum, e);
      }
      const float alpha = std::exp(out.m[r] - m_new);
      out.l[r] = out.l[r] * alpha + hn::GetLane(hn::SumOfLanes(d, sum));
      out.m[r] = m_new;
      float* o = out.o + size_t(r) * hd;
      const auto av = hn::Set(dc, alpha);
      int c = 0;
      for (; c + kGroup * NC <= hd; c += kGroup * NC) {  // kGroup channel vectors per pass over the keys
        hn::Vec<D> a[kGroup];
        for (int i = 0; i < kGroup; ++i) a[i] = hn::Mul(hn::LoadU(dc, o + c + i * NC), av);
        for (jj = 0; jj < n; ++jj) {
          const TV* vr = v + jj * v_stride;
          const auto w = hn::Set(dc, sr[jj] * Scale(vr, c));  // a quantized row's block scale joins the weight
          for (int i = 0; i < kGroup; ++i) a[i] = hn::MulAdd(w, Load(dc, vr, c + i * NC), a[i]);
        }
        for (int i = 0; i < kGroup; ++i) hn::StoreU(a[i], dc, o + c + i * NC);
      }
      for (; c < hd; c += NC) {  // float types only: quantized rows end on whole groups
        auto a = hn::Mul(hn::LoadU(dc, o + c), av);
        for (jj = 0; jj < n; ++jj) {
          const TV* vr = v + jj * v_stride;
          a = hn::MulAdd(hn::Set(dc, sr[jj] * Scale(vr, c)), Load(dc, vr, c), a);
        }
        hn::StoreU(a, dc, o + c);
      }
    }
  }
}

template <typename TK, typename TV>
void AttendNarrowAs(const AttentionProblem& p, const detail::AttentionBlock& b, const detail::AttentionPartial& out) {
  constexpr bool kQuantized = kScaled<TK> || kScaled<TV>;
  // Channel vectors as wide as head_dim allows (head dims are multiples of 8 in practice);
  // quantized rows at most 16 lanes, so that a vector stays inside one block's half.
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d)), hd = p.head_dim;
  if (hd % N == 0 && (!kQuantized || N <= 16)) return AttendNarrow<DF, TK, TV>(d, p, b, out);
  if (N >= 16 && hd % 16 == 0) return AttendNarrow<hn::CappedTag<float, 16>, TK, TV>(hn::CappedTag<float, 16>(), p, b, out);
  if (N >= 8 && hd % 8 == 0) return AttendNarrow<hn::CappedTag<float, 8>, TK, TV>(hn::CappedTag<float, 8>(), p, b, out);
  if (N >= 4 && hd % 4 == 0) return AttendNarrow<hn::CappedTag<float, 4>, TK, TV>(hn::CappedTag<float, 4>(), p, b, out);
  return AttendNarrow<hn::CappedTag<float, 1>, TK, TV>(hn::CappedTag<float, 1>(), p, b, out);
}

// ---- key weights: the softmax weight each key received ------------------
// Σ_{t,h} exp(scale · q[t,h]·k[j] − lse[t,h]) for keys [key_begin, key_end), added to key_weight[j]:
// the scores recomputed against the finished log-sum-exps (as FlashAttention's backward recomputes
// its probabilities), one 64-key tile converted at a time, vectorized over channels for the dot
// products and over keys for the exponentials.
template <class D>
void KeyWeightsAs(D dc, const AttentionProblem& p, const float* lse, int64_t key_begin, int64_t key_end) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d)), NC = static_cast<int>(hn::Lanes(dc));
  const int group = p.n_heads / p.n_kv_heads, hd = p.head_dim;
  Scratch& s = scratch();
  s.st.resize(kKeyTile);
  s.l.resize(kKeyTile);
  for (int64_t j0 = key_begin; j0 < key_end; j0 += kKeyTile) {
    const int n = static_cast<int>(std::min<int64_t>(kKeyTile, key_end - j0));
    std::fill(s.l.begin(), s.l.end(), 0.0f);
    // Query t sees key j when j ≤ keys_before + t: the tile's first key limits the first query.
    const int t_first = static_cast<int>(std::max<int64_t>(0, j0 - p.keys_before));
    for (int g = 0; g < p.n_kv_heads; ++g) {
      const TileRows k = tile_rows(p.k, p.k_type, j0, n, p.n_kv_heads, g, hd, s.kbuf);
      for (int t = t_first; t < p.n_queries; ++t) {
        const int visible = static_cast<int>(std::min<int64_t>(n, p.keys_before + t + 1 - j0));
        for (int h = g * group; h < (g + 1) * group; ++h) {
          const float* q = p.q + (int64_t(t) * p.n_heads + h) * hd;
          const float row_lse = lse[int64_t(t) * p.n_heads + h];
          for (int jj = 0; jj < kKeyTile; ++jj) {
            if (jj >= visible) {
              s.st[jj] = kMasked;
              continue;
            }
            auto acc = hn::Zero(dc);
            for (int c = 0; c < hd; c += NC) acc = hn::MulAdd(hn::LoadU(dc, q + c), hn::LoadU(dc, k.row(jj) + c), acc);
            s.st[jj] = hn::GetLane(hn::SumOfLanes(dc, acc)) * p.scale - row_lse;
          }
          for (int jj = 0; jj < kKeyTile; jj += N)
            hn::StoreU(hn::Add(hn::LoadU(d, s.l.data() + jj), softmax::SoftmaxExp(d, hn::Min(hn::LoadU(d, s.st.data() + jj), hn::Zero(d)))),
                       d, s.l.data() + jj);
        }
      }
    }
    for (int jj = 0; jj < n; ++jj) p.key_weight[j0 + jj] += s.l[jj];
  }
}

}  // namespace attention_impl

void AttendBlock(const AttentionProblem& p, const detail::AttentionBlock& b, const detail::AttentionPartial& out) {
  using namespace attention_impl;
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d));
  if (b.rows(p.n_heads / p.n_kv_heads) >= 2 * N) return AttendWide(p, b, out);
  // Keys and values of one type, or f32 keys (rotated at read) beside values of any type.
  const auto with_keys = [&](auto key) {
    using TK = decltype(key);
    switch (p.v_type) {
      case KvType::F16: return AttendNarrowAs<TK, hwy::float16_t>(p, b, out);
      case KvType::Q8_0: return AttendNarrowAs<TK, BlockQ8_0>(p, b, out);
      case KvType::Q4_0: return AttendNarrowAs<TK, BlockQ4_0>(p, b, out);
      case KvType::F32: return AttendNarrowAs<TK, float>(p, b, out);
    }
  };
  if (p.k_type == KvType::F32) return with_keys(float{});
  if (p.k_type != p.v_type) throw std::invalid_argument("attention: keys must be f32 or of the values' storage type");
  switch (p.k_type) {
    case KvType::F16: return AttendNarrowAs<hwy::float16_t, hwy::float16_t>(p, b, out);
    case KvType::Q8_0: return AttendNarrowAs<BlockQ8_0, BlockQ8_0>(p, b, out);
    case KvType::Q4_0: return AttendNarrowAs<BlockQ4_0, BlockQ4_0>(p, b, out);
    case KvType::F32: break;
  }
}

void KeyWeights(const AttentionProblem& p, const float* lse, int64_t key_begin, int64_t key_end) {
  using namespace attention_impl;
  const int hd = p.head_dim;
  if (hd % 8 == 0 && hn::MaxLanes(DF()) >= 8) return KeyWeightsAs(hn::CappedTag<float, 8>(), p, lse, key_begin, key_end);
  if (hd % 4 == 0 && hn::MaxLanes(DF()) >= 4) return KeyWeightsAs(hn::CappedTag<float, 4>(), p, lse, key_begin, key_end);
  return KeyWeightsAs(hn::CappedTag<float, 1>(), p, lse, key_begin, key_end);
}

const char* AttentionTargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace ropescale
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ropescale::detail {
HWY_EXPORT(AttendBlock);
HWY_EXPORT(AttentionTargetName);
HWY_EXPORT(KeyWeights);
void attend_block(const AttentionProblem& p, const AttentionBlock& b, const AttentionPartial& out) {
  HWY_DYNAMIC_DISPATCH(AttendBlock)(p, b, out);
}
void accumulate_key_weights(const AttentionProblem& p, const float* lse, int64_t key_begin, int64_t key_end) {
  HWY_DYNAMIC_DISPATCH(KeyWeights)(p, lse, key_begin, key_end);
}
}  // namespace ropescale::detail
namespace ropescale {
std::string attention_simd_target() { return HWY_DYNAMIC_DISPATCH(detail::AttentionTargetName)(); }
}  // namespace ropescale
#endif
