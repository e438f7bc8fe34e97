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
//   for a padded vector of rows. Quantized rows are read in place: a key block
//   meets the query rounded to q8_0 in integers (byte products on AVX2, as
//   ggml's dot products), its scale multiplies the block's partial dot
//   product; a value block's integers are widened in registers, its scale
//   folded into the softmax weight. Scales are read with the integers.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/attention_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "softmax_exp-inl.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <type_traits>
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
  std::vector<float> qt, ot, st, m, l, alpha, kbuf, vbuf, qr, qd, wt;
  std::vector<int32_t> pos;
  std::vector<int16_t> qi;
  std::vector<int32_t> qsum;
  std::vector<BlockQ8_0> qb;
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

// f16 → f32 for a block's scale (finite by construction): the bits moved into f32's sign,
// exponent and mantissa fields, rescaled by 2^112 — exact for normals and subnormals; no branch.
HWY_INLINE float ScaleOf(uint16_t h) {
  const uint32_t bits = (static_cast<uint32_t>(h & 0x8000u) << 16) | (static_cast<uint32_t>(h & 0x7fffu) << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f * 0x1p112f;
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
  s.qr.resize(hd);
  for (int r = 0; r < rows; ++r) {
    const int t = b.query(r, group);
    detail::query_for_keys(p.k_type, p.q + (int64_t(t) * p.n_heads + b.head(r, group)) * hd, s.qr.data(), hd);
    for (int c = 0; c < hd; ++c) s.qt[size_t(c) * rp + r] = s.qr[c] * p.scale;
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
HWY_INLINE hn::Vec<hn::CappedTag<hn::TFromD<D>, 4>> SumBlocks(D, hn::Vec<D> v) {
  if constexpr (hn::MaxLanes(D()) <= 4) {
    return v;
  } else {
    const hn::Half<D> dh;
    return SumBlocks(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  }
}

// Four dot products' accumulators (f32 or i32 lanes) → their four sums, lane i = Σ lanes
// of a_i (a 4 × 4 transpose by interleaving, instead of four horizontal reductions).
template <class D>
HWY_INLINE hn::Vec<hn::CappedTag<hn::TFromD<D>, 4>> Sum4(D d, hn::Vec<D> a0, hn::Vec<D> a1, hn::Vec<D> a2, hn::Vec<D> a3) {
  const hn::Repartition<uint64_t, D> du;
  const auto ab = hn::Add(hn::InterleaveLower(d, a0, a1), hn::InterleaveUpper(d, a0, a1));  // a0₀+a0₂ a1₀+a1₂ a0₁+a0₃ a1₁+a1₃
  const auto cd = hn::Add(hn::InterleaveLower(d, a2, a3), hn::InterleaveUpper(d, a2, a3));
  const auto lo = hn::InterleaveLower(du, hn::BitCast(du, ab), hn::BitCast(du, cd));
  const auto hi = hn::InterleaveUpper(du, hn::BitCast(du, ab), hn::BitCast(du, cd));
  return SumBlocks(d, hn::Add(hn::BitCast(d, lo), hn::BitCast(d, hi)));
}
#endif

// ---- quantized rows: integer dot products, scales read beside the integers ----
//
// A block's f16 scale is read where its integers are, key by key, not in a pass of its own
// over the tile: such a pass does little but touch each key's cache line (a line a key at
// ggml's 34-byte rows), a run of loads with no arithmetic to overlap them — on Zen 3 the
// passes over keys' and values' scales took a fifth of a q8_0 decode step at 8K (23 of 122 µs).

// The f32 scales of rows [first, n)'s blocks (row j at rows + j · stride; `blocks` blocks a row):
// block b's at out[b · kKeyTile + j], lanes past n 0. The whole tile (first = 0) for f32 keys rotated
// at read beside quantized values; quantized keys read their values' scales four keys at a time in
// their own loop (ScoreQuantizedKeys), this only for the keys after the last four.
template <typename T>
void TileScales(const T* rows, int64_t stride, int first, int n, int blocks, float* out) {
  for (int blk = 0; blk < blocks; ++blk) {
    float* o = out + size_t(blk) * kKeyTile;
    for (int j = first; j < n; ++j) o[j] = ScaleOf(rows[j * stride + blk].d);
    std::fill(o + n, o + kKeyTile, 0.0f);
  }
}

#if HWY_TARGET != HWY_SCALAR
// The scales of block `blk` of rows 0 … 3 (row i at rows + i · stride) as four f32 lanes: the
// four f16 bit patterns packed into one 64-bit lane, then one conversion (vcvtph2ps with F16C).
template <typename T>
HWY_INLINE hn::Vec<hn::CappedTag<float, 4>> Scales4(const T* rows, int64_t stride, int blk) {
  const hn::CappedTag<float, 4> d4;
  const hn::CappedTag<uint64_t, 1> d64;
  uint64_t bits = 0;
  for (int i = 0; i < 4; ++i) bits |= uint64_t(rows[i * stride + blk].d) << (16 * i);
  return hn::PromoteTo(d4, hn::BitCast(hn::Rebind<hwy::float16_t, decltype(d4)>(), hn::Set(d64, bits)));
}
#endif

// The query rounded to q8_0 (detail::query_for_keys) meets a key block in integers, exact: as
// bytes on AVX2 (kByteDots), elsewhere as 16-bit integers, pairs multiplied and summed into 32-bit
// lanes (pmaddwd on x86); then one conversion and one multiply by d_q · d_k · scale per block.
using D16 = hn::CappedTag<int16_t, 16>;  // ≤ 16 lanes: inside one half of a q4_0 block
using D32 = hn::RepartitionToWide<D16>;
using DF32 = hn::Rebind<float, D32>;

HWY_INLINE hn::Vec<D16> LoadInt16(D16 d, const BlockQ8_0* row, int c) {
  return hn::PromoteTo(d, hn::LoadU(hn::Rebind<int8_t, D16>(), row[c / kQuantBlock].qs + c % kQuantBlock));
}
HWY_INLINE hn::Vec<D16> LoadInt16(D16 d, const BlockQ4_0* row, int c) {
  const int j = c % kQuantBlock;  // values j < 16 are low nibbles of byte j, the rest high nibbles of byte j − 16
  auto x = hn::BitCast(d, hn::PromoteTo(hn::RebindToUnsigned<D16>(), hn::LoadU(hn::Rebind<uint8_t, D16>(), row[c / kQuantBlock].qs + j % 16)));
  if (j >= 16) x = hn::ShiftRight<4>(x);
  return hn::Sub(hn::And(x, hn::Set(d, 15)), hn::Set(d, 8));
}

// Whether the keys' dot products take ggml's byte path (x86 with AVX2: vpmaddubsw).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
template <typename TK>
inline constexpr bool kByteDots = kScaled<TK> && hn::MaxLanes(D32()) == 8;
#else
template <typename TK>
inline constexpr bool kByteDots = false;
#endif

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
// One key block against R query rows' blocks in bytes, as ggml's AVX2 dot products: an unsigned
// byte times a signed one, adjacent products summed into 16 bits (vpmaddubsw), pairs of those into
// 32 bits (vpmaddwd by ones); eight 32-bit partial sums a row. q8_0: |q| (qa) times k with q's
// sign (vpsignb; |q| once per row, not |k| per key); 2 · 127² < 2¹⁵, no saturation (q8_0 never
// stores −128). q4_0: the nibble u = k + 8 times q (qb; 2 · 15 · 127), the 8 · Σq taken off after the sums.
template <int R, typename TK>
HWY_INLINE void ByteDots(const TK& kblock, const __m256i* qa, const __m256i* qb, __m256i* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (std::is_same_v<TK, BlockQ8_0>) {
    const __m256i kb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kblock.qs));
    for (int r = 0; r < R; ++r) out[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(qa[r], _mm256_sign_epi8(kb, qb[r])), ones);
  } else {  // values 0 … 15: low nibbles of bytes 0 … 15, then their high nibbles
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kblock.qs));
    const __m128i lo = _mm_set1_epi8(15);
    const __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), lo), _mm_and_si128(x, lo));
    for (int r = 0; r < R; ++r) out[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(u, qb[r]), ones);
  }
}

// Block `blk` of R query rows (row r's blocks at qblocks + r · blocks): its bytes (qb) and their |·| (qa).
template <int R>
HWY_INLINE void QueryBytes(const BlockQ8_0* qblocks, int blocks, int blk, __m256i* qa, __m256i* qb) {
  for (int r = 0; r < R; ++r) {
    qb[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qblocks[r * blocks + blk].qs));
    qa[r] = _mm256_sign_epi8(qb[r], qb[r]);
  }
}

// Two keys' 8-lane sums a, b → [a₀+a₂ b₀+b₂ a₁+a₃ b₁+b₃ | the same of lanes 4 … 7]; two of
// those (keys 0, 1 and 2, 3) → [Σa₀…₃ Σb₀…₃ Σc₀…₃ Σd₀…₃ | Σ of lanes 4 … 7]; two of those (keys 0 … 3
// and 4 … 7) → the eight keys' sums. Sum4's steps, a pair of keys at a time so that eight keys'
// accumulators need not all be live at once.
HWY_INLINE __m256i PairSums(__m256i a, __m256i b) {
  return _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
}
HWY_INLINE __m256i QuadSums(__m256i ab, __m256i cd) {
  return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}
HWY_INLINE __m256i OctSums(__m256i abcd, __m256i efgh) {
  return _mm256_add_epi32(_mm256_permute2x128_si256(abcd, efgh, 0x20), _mm256_permute2x128_si256(abcd, efgh, 0x31));
}

// The scales of block `blk` of rows 0 … 7 (row i at rows + i · stride) as eight f32 lanes: the f16
// bit patterns inserted into one register (vpinsrw from memory, two chains of four), one vcvtph2ps.
// (Packing them with scalar shifts into two 64-bit integers instead, as Scales4 does, measured 8 %
// slower here on a Xeon at 8K.)
template <typename T>
HWY_INLINE __m256 Scales8(const T* rows, int64_t stride, int blk) {
  __m128i lo = _mm_cvtsi32_si128(rows[blk].d), hi = _mm_cvtsi32_si128(rows[4 * stride + blk].d);
  lo = _mm_insert_epi16(lo, rows[stride + blk].d, 1);
  hi = _mm_insert_epi16(hi, rows[5 * stride + blk].d, 1);
  lo = _mm_insert_epi16(lo, rows[2 * stride + blk].d, 2);
  hi = _mm_insert_epi16(hi, rows[6 * stride + blk].d, 2);
  lo = _mm_insert_epi16(lo, rows[3 * stride + blk].d, 3);
  hi = _mm_insert_epi16(hi, rows[7 * stride + blk].d, 3);
  return _mm256_cvtph_ps(_mm_unpacklo_epi64(lo, hi));
}
#endif

// Scores of n keys against R query rows (row r's scores at sr + r · kKeyTile): each key vector is
// loaded (and widened) once for the R rows, four keys' sums reduced together (Sum4).
//
// Quantized keys: q row r's q8_0 integers at q + r · hd (int16) and its blocks at qb + r · blocks (the
// byte path reads their qs), the sum of block b's integers at qsum[r · blocks + b] (q4_0 only),
// qd[r · blocks + b] = d_q · scale of its block b. A block's
// four integer dot products are reduced in 32-bit lanes, converted once and multiplied by the four
// keys' scales (Scales4) — on the byte path eight keys' (Scales8), the keys after the last eight four at
// a time. With vs, the values' scales (TV = TK) are read in the same loop, block b's
// of key j at vs[b · kKeyTile + j] (lanes past n 0).
template <int R, typename TK>
void ScoreQuantizedKeys(const TK* k, int64_t k_stride, int n, const int16_t* q, [[maybe_unused]] const BlockQ8_0* qblocks,
                        [[maybe_unused]] const int32_t* qsum, const float* qd, int hd, float* sr, const TK* v, int64_t v_stride,
                        float* vs) {
  const D16 d16;
  const D32 d32;
  const int L16 = static_cast<int>(hn::Lanes(d16)), blocks = hd / kQuantBlock;
  int jj = 0;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  if constexpr (kByteDots<TK>) {
    // Eight keys a pass: their sums reduced into one vector of eight (a pair of keys at a time),
    // one conversion, one multiply by their scales (Scales8, keys' and values') and one store.
    for (; jj + 8 <= n; jj += 8) {
      __m256 acc[R];
      for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
      for (int blk = 0; blk < blocks; ++blk) {
        __m256i qb[R], qa[R];
        QueryBytes<R>(qblocks, blocks, blk, qa, qb);
        __m256i quads[R][2];
        for (int h = 0; h < 2; ++h) {  // keys 4h … 4h + 3
          __m256i pairs[R][2];
          for (int p = 0; p < 2; ++p) {
            __m256i a[R], b[R];
            ByteDots<R>(k[(jj + 4 * h + 2 * p) * k_stride + blk], qa, qb, a);
            ByteDots<R>(k[(jj + 4 * h + 2 * p + 1) * k_stride + blk], qa, qb, b);
            for (int r = 0; r < R; ++r) pairs[r][p] = PairSums(a[r], b[r]);
          }
          for (int r = 0; r < R; ++r) quads[r][h] = QuadSums(pairs[r][0], pairs[r][1]);
        }
        const __m256 kscale = Scales8(k + jj * k_stride, k_stride, blk);
        if (vs) _mm256_storeu_ps(vs + size_t(blk) * kKeyTile + jj, Scales8(v + jj * v_stride, v_stride, blk));
        for (int r = 0; r < R; ++r) {
          __m256i isums = OctSums(quads[r][0], quads[r][1]);
          if constexpr (std::is_same_v<TK, BlockQ4_0>) isums = _mm256_sub_epi32(isums, _mm256_set1_epi32(8 * qsum[r * blocks + blk]));
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isums), _mm256_mul_ps(kscale, _mm256_set1_ps(qd[r * blocks + blk])), acc[r]);
        }
      }
      for (int r = 0; r < R; ++r) _mm256_storeu_ps(sr + size_t(r) * kKeyTile + jj, acc[r]);
    }
  }
#endif
#if HWY_TARGET != HWY_SCALAR
  if constexpr (hn::MaxLanes(D32()) >= 4) {
    const hn::CappedTag<float, 4> d4;
    for (; jj + 4 <= n; jj += 4) {
      hn::Vec<decltype(d4)> acc[R];
      for (int r = 0; r < R; ++r) acc[r] = hn::Zero(d4);
      for (int blk = 0; blk < blocks; ++blk) {
        const int c0 = blk * kQuantBlock;
        hn::Vec<D32> s0[R][4], s1[R][4];
        for (int r = 0; r < R; ++r)
          for (int i = 0; i < 4; ++i) s0[r][i] = s1[r][i] = hn::Zero(d32);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
        if constexpr (kByteDots<TK>) {
          __m256i qb[R], qa[R];
          QueryBytes<R>(qblocks, blocks, blk, qa, qb);
          for (int i = 0; i < 4; ++i) {
            __m256i dots[R];
            ByteDots<R>(k[(jj + i) * k_stride + blk], qa, qb, dots);
            for (int r = 0; r < R; ++r) s0[r][i].raw = dots[r];
          }
        } else
#endif
        for (int i = 0; i < 4; ++i) {
          const TK* kr = k + (jj + i) * k_stride;
          for (int c = c0; c < c0 + kQuantBlock; c += L16) {
            const auto kv = LoadInt16(d16, kr, c);
            for (int r = 0; r < R; ++r)
              s0[r][i] = hn::ReorderWidenMulAccumulate(d32, hn::LoadU(d16, q + size_t(r) * hd + c), kv, s0[r][i], s1[r][i]);
          }
        }
        const auto kscale = Scales4(k + jj * k_stride, k_stride, blk);
        if (vs) hn::StoreU(Scales4(v + jj * v_stride, v_stride, blk), d4, vs + size_t(blk) * kKeyTile + jj);
        for (int r = 0; r < R; ++r) {
          hn::Vec<D32> d[4];
          for (int i = 0; i < 4; ++i) d[i] = hn::RearrangeToOddPlusEven(s0[r][i], s1[r][i]);
          auto isums = Sum4(d32, d[0], d[1], d[2], d[3]);
          if constexpr (kByteDots<TK> && std::is_same_v<TK, BlockQ4_0>)
            isums = hn::Sub(isums, hn::Set(hn::CappedTag<int32_t, 4>(), 8 * qsum[r * blocks + blk]));
          const auto dots = hn::ConvertTo(d4, isums);
          acc[r] = hn::MulAdd(dots, hn::Mul(kscale, hn::Set(d4, qd[r * blocks + blk])), acc[r]);
        }
      }
      for (int r = 0; r < R; ++r) hn::StoreU(acc[r], d4, sr + size_t(r) * kKeyTile + jj);
    }
  }
#endif
  const int tail = jj;
  for (; jj < n; ++jj) {
    const TK* kr = k + jj * k_stride;
    for (int r = 0; r < R; ++r) {
      float dot = 0;
      for (int blk = 0; blk < blocks; ++blk) {
        const int c0 = blk * kQuantBlock;
        auto s0 = hn::Zero(d32), s1 = hn::Zero(d32);
        for (int c = c0; c < c0 + kQuantBlock; c += L16)
          s0 = hn::ReorderWidenMulAccumulate(d32, hn::LoadU(d16, q + size_t(r) * hd + c), LoadInt16(d16, kr, c), s0, s1);
        const int32_t isum = hn::GetLane(hn::SumOfLanes(d32, hn::RearrangeToOddPlusEven(s0, s1)));
        dot = std::fma(static_cast<float>(isum), ScaleOf(kr[blk].d) * qd[r * blocks + blk], dot);
      }
      sr[size_t(r) * kKeyTile + jj] = dot;
    }
  }
  if (vs) TileScales(v, v_stride, tail, n, blocks, vs);  // the keys the four-at-a-time loop left, and zeros past n
}

// Float keys (f32, f16): q row r (scale folded in) at q + r · hd, channel vectors of dc.
template <int R, class D, typename TK>
void ScoreFloatKeys(D dc, const TK* k, int64_t k_stride, int n, const float* q, int hd, float* sr) {
  const int NC = static_cast<int>(hn::Lanes(dc));
  int jj = 0;
#if HWY_TARGET != HWY_SCALAR
  if constexpr (hn::MaxLanes(D()) >= 4) {
    for (; jj + 4 <= n; jj += 4) {
      hn::Vec<D> a[R][4];
      const TK* kr[4];
      for (int i = 0; i < 4; ++i) kr[i] = k + (jj + i) * k_stride;
      for (int r = 0; r < R; ++r)
        for (int i = 0; i < 4; ++i) a[r][i] = hn::Zero(dc);
      for (int c = 0; c < hd; c += NC) {
        hn::Vec<D> qv[R];
        for (int r = 0; r < R; ++r) qv[r] = hn::LoadU(dc, q + size_t(r) * hd + c);
        for (int i = 0; i < 4; ++i) {
          const auto kv = Load(dc, kr[i], c);
          for (int r = 0; r < R; ++r) a[r][i] = hn::MulAdd(qv[r], kv, a[r][i]);
        }
      }
      for (int r = 0; r < R; ++r)
        hn::StoreU(Sum4(dc, a[r][0], a[r][1], a[r][2], a[r][3]), hn::CappedTag<float, 4>(), sr + size_t(r) * kKeyTile + jj);
    }
  }
#endif
  for (; jj < n; ++jj) {
    const TK* kr = k + jj * k_stride;
    for (int r = 0; r < R; ++r) {
      auto acc = hn::Zero(dc);
      for (int c = 0; c < hd; c += NC) acc = hn::MulAdd(hn::LoadU(dc, q + size_t(r) * hd + c), Load(dc, kr, c), acc);
      sr[size_t(r) * kKeyTile + jj] = hn::GetLane(hn::SumOfLanes(dc, acc));
    }
  }
}

// Output rows r = 0 … R−1 (at o + r · hd), channels c … c + G·Lanes(dc):
// o[r] = α[r] · o[r] + Σ_jj w[r][jj] · V[jj][c …], the weights w[r] at w + r · w_stride (the softmax
// numerators; for quantized rows times the scale of the block the G vectors lie in, read with the
// integers). Each value vector is loaded (and widened) once for the R rows.
template <int R, int G, class D, typename TV>
HWY_INLINE void AccumulateRows(D dc, const TV* v, int64_t v_stride, int n, int c, const float* w, size_t w_stride,
                               const float* alpha, float* o, int hd) {
  const int NC = static_cast<int>(hn::Lanes(dc));
  hn::Vec<D> a[R][G];
  for (int r = 0; r < R; ++r) {
    const auto av = hn::Set(dc, alpha[r]);
    for (int i = 0; i < G; ++i) a[r][i] = hn::Mul(hn::LoadU(dc, o + size_t(r) * hd + c + i * NC), av);
  }
  for (int jj = 0; jj < n; ++jj) {
    const TV* vr = v + jj * v_stride;
    hn::Vec<D> x[G];
    for (int i = 0; i < G; ++i) x[i] = Load(dc, vr, c + i * NC);
    for (int r = 0; r < R; ++r) {
      const auto wr = hn::Set(dc, w[r * w_stride + jj]);
      for (int i = 0; i < G; ++i) a[r][i] = hn::MulAdd(wr, x[i], a[r][i]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < G; ++i) hn::StoreU(a[r][i], dc, o + size_t(r) * hd + c + i * NC);
}

// D: the channel vectors (a capped tag when head_dim is not a multiple of the
// full vector), TK / TV: the storage of keys and values (float, float16_t,
// BlockQ8_0, BlockQ4_0): the same, or f32 keys rotated at read beside stored values.
// Per tile and KV head: the head's rows' scores and softmax updates, then their values
// in passes over the keys (two rows at a time share each loaded key vector, four rows each value vector).
template <class D, typename TK, typename TV>
void AttendNarrow(D dc, const AttentionProblem& p, const detail::AttentionBlock& b, const detail::AttentionPartial& out) {
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d)), NC = static_cast<int>(hn::Lanes(dc));
  const int group = p.n_heads / p.n_kv_heads, hd = p.head_dim, rows = b.rows(group), rph = b.rows_per_head(group);
  // Strides in elements of TK / TV.
  const int64_t k_stride = int64_t(p.n_kv_heads) * hd / kValues<TK>, v_stride = int64_t(p.n_kv_heads) * hd / kValues<TV>;
  // Channel vectors per pass over the keys when accumulating values: four, or (quantized) as many as one block holds.
  constexpr int kGroup = kScaled<TV> ? std::max<int>(1, std::min<int>(4, kQuantBlock / static_cast<int>(hn::MaxLanes(D())))) : 4;
  const int blocks = hd / kQuantBlock;
  Scratch& s = scratch();
  s.qt.resize(size_t(rows) * hd);  // row-major here: scaled query rows
  s.st.resize(size_t(rows) * kKeyTile);
  s.alpha.resize(rows);
  if constexpr (kScaled<TK>) {  // quantized keys: each row's query as q8_0 integers and d_q · scale per block
    s.qi.resize(size_t(rows) * hd);
    s.qsum.resize(size_t(rows) * blocks);
    s.qd.resize(size_t(rows) * blocks);
    s.qb.resize(size_t(rows) * blocks);
  }
  if constexpr (kScaled<TV>) {
    s.vbuf.resize(size_t(blocks) * kKeyTile);        // the tile's value scales
    s.wt.resize(size_t(rows) * blocks * kKeyTile);  // softmax weights times those scales
  }
  for (int r = 0; r < rows; ++r) {
    const float* q = p.q + (int64_t(b.query(r, group)) * p.n_heads + b.head(r, group)) * hd;
    if constexpr (kScaled<TK>) {
      BlockQ8_0* qb = s.qb.data() + size_t(r) * blocks;
      kv_store_rows(KvType::Q8_0, q, qb, 1, hd);  // the rounding of detail::query_for_keys
      for (int c = 0; c < hd; ++c) s.qi[size_t(r) * hd + c] = qb[c / kQuantBlock].qs[c % kQuantBlock];
      for (int blk = 0; blk < blocks; ++blk) {
        s.qd[size_t(r) * blocks + blk] = ScaleOf(qb[blk].d) * p.scale;
        if constexpr (std::is_same_v<TK, BlockQ4_0>) s.qsum[size_t(r) * blocks + blk] = std::accumulate(qb[blk].qs, qb[blk].qs + kQuantBlock, 0);
      }
    } else {
      for (int c = 0; c < hd; ++c) s.qt[size_t(r) * hd + c] = q[c] * p.scale;
    }
    std::fill(out.o + size_t(r) * hd, out.o + size_t(r + 1) * hd, 0.0f);
    out.m[r] = kNoScore;
    out.l[r] = 0.0f;
  }
  const int64_t last_pos = p.keys_before + b.t1 - 1;
  const int64_t key_end = std::min(b.key_end, last_pos + 1);
  for (int64_t j0 = b.key_begin; j0 < key_end; j0 += kKeyTile) {
    const int n = static_cast<int>(std::min<int64_t>(kKeyTile, key_end - j0));
    for (int g = b.kv_head, r0 = 0; g < b.kv_head + b.kv_heads; ++g, r0 += rph) {  // r0: the head's first row
      const TK* k = static_cast<const TK*>(p.k) + j0 * k_stride + int64_t(g) * hd / kValues<TK>;
      const TV* v = static_cast<const TV*>(p.v) + j0 * v_stride + int64_t(g) * hd / kValues<TV>;
      // Scores, two rows at a time.
      {
        int r = r0;
        const auto score = [&](auto rows_at_once, int first) {
          constexpr int R = decltype(rows_at_once)::value;
          float* sr = s.st.data() + size_t(first) * kKeyTile;
          if constexpr (kScaled<TK>) {  // TV = TK: the first call also reads the values' scales, beside the keys'
            const size_t qr = size_t(first) * hd, qb = size_t(first) * blocks;
            ScoreQuantizedKeys<R>(k, k_stride, n, s.qi.data() + qr, s.qb.data() + qb, s.qsum.data() + qb, s.qd.data() + qb, hd,
                                  sr, v, v_stride, first == r0 ? s.vbuf.data() : nullptr);
          } else {
            ScoreFloatKeys<R>(dc, k, k_stride, n, s.qt.data() + size_t(first) * hd, hd, sr);
            if constexpr (kScaled<TV>)
              if (first == r0) TileScales(v, v_stride, 0, n, blocks, s.vbuf.data());
          }
        };
        for (; r + 2 <= r0 + rph; r += 2) score(std::integral_constant<int, 2>(), r);
        for (; r < r0 + rph; ++r) score(std::integral_constant<int, 1>(), r);
      }
      // Causal mask and online softmax, row by row.
      for (int r = r0; r < r0 + rph; ++r) {
        const int64_t pos = p.keys_before + b.query(r, group);
        float* sr = s.st.data() + size_t(r) * kKeyTile;
        int jj;
        for (jj = static_cast<int>(std::max<int64_t>(0, pos + 1 - j0)); jj < kKeyTile; ++jj) sr[jj] = kMasked;
        auto mxv = hn::LoadU(d, sr);
        for (jj = N; jj < kKeyTile; jj += N) mxv = hn::Max(mxv, hn::LoadU(d, sr + jj));
        const float m_new = std::max(out.m[r], hn::GetLane(hn::MaxOfLanes(d, mxv)));
        const auto mv = hn::Set(d, m_new);
        auto sum = hn::Zero(d);
        const bool keep_exps = !kScaled<TV> || out.exps;  // quantized values read only wt
        for (jj = 0; jj < kKeyTile; jj += N) {
          const auto e = softmax::SoftmaxExp(d, hn::Sub(hn::LoadU(d, sr + jj), mv));
          if (keep_exps) hn::StoreU(e, d, sr + jj);
          sum = hn::Add(sum, e);
          if constexpr (kScaled<TV>)  // quantized values: the weights times each value block's scale
            for (int blk = 0; blk < blocks; ++blk)
              hn::StoreU(hn::Mul(e, hn::LoadU(d, s.vbuf.data() + size_t(blk) * kKeyTile + jj)), d,
                         s.wt.data() + (size_t(r) * blocks + blk) * kKeyTile + jj);
        }
        s.alpha[r] = std::exp(out.m[r] - m_new);
        out.l[r] = out.l[r] * s.alpha[r] + hn::GetLane(hn::SumOfLanes(d, sum));
        out.m[r] = m_new;
        if (out.exps) {  // H2O's weights: these numerators, rescaled by the row's log-sum-exp once it is known
          const int64_t row = int64_t(b.query(r, group)) * p.n_heads + b.head(r, group);
          std::copy(sr, sr + n, out.exps + row * out.exp_keys + j0);
          out.tile_m[row * ((out.exp_keys + kKeyTile - 1) / kKeyTile) + j0 / kKeyTile] = m_new;
        }
      }
      // Values: four rows at a time where the head has four or more (GQA ×4 and up: each loaded and
      // widened value vector serves four rows, kGroup / 2 vectors a pass over the keys), then two at a
      // time (kGroup vectors a pass), then one.
      const size_t w_stride = kScaled<TV> ? size_t(blocks) * kKeyTile : kKeyTile;
      const auto weights = [&](int r, int c) {
        if constexpr (kScaled<TV>) return s.wt.data() + (size_t(r) * blocks + c / kQuantBlock) * kKeyTile;  // groups stay in one block
        else return s.st.data() + size_t(r) * kKeyTile;
      };
      // Rows [r_begin, r_end), R at a time, G channel vectors a pass; then the channels left past the
      // last whole group one vector a pass (float types only: quantized rows end on whole groups).
      const auto rows_in_passes = [&](auto rows_at_once, auto group, int r_begin, int r_end) {
        constexpr int R = decltype(rows_at_once)::value, G = decltype(group)::value;
        int c = 0;
        for (; c + G * NC <= hd; c += G * NC)
          for (int r = r_begin; r + R <= r_end; r += R)
            AccumulateRows<R, G>(dc, v, v_stride, n, c, weights(r, c), w_stride, s.alpha.data() + r, out.o + size_t(r) * hd, hd);
        for (; c < hd; c += NC)
          for (int r = r_begin; r + R <= r_end; r += R)
            AccumulateRows<R, 1>(dc, v, v_stride, n, c, weights(r, c), w_stride, s.alpha.data() + r, out.o + size_t(r) * hd, hd);
      };
      const int quads_end = r0 + rph / 4 * 4, pairs_end = quads_end + (r0 + rph - quads_end) / 2 * 2;
      rows_in_passes(std::integral_constant<int, 4>(), std::integral_constant<int, std::max(1, kGroup / 2)>(), r0, quads_end);
      rows_in_passes(std::integral_constant<int, 2>(), std::integral_constant<int, kGroup>(), quads_end, pairs_end);
      rows_in_passes(std::integral_constant<int, 1>(), std::integral_constant<int, kGroup>(), pairs_end, r0 + rph);
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
  const float* queries = p.q;  // scored as the attention scored them (detail::query_for_keys)
  if (is_quantized(p.k_type)) {
    const int64_t n_rows = int64_t(p.n_queries) * p.n_heads;
    s.qr.resize(size_t(n_rows) * hd);
    for (int64_t r = 0; r < n_rows; ++r) detail::query_for_keys(p.k_type, p.q + r * hd, s.qr.data() + r * hd, hd);
    queries = s.qr.data();
  }
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
          const float* q = queries + (int64_t(t) * p.n_heads + h) * hd;
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

bool AttendBlock(const AttentionProblem& p, const detail::AttentionBlock& b, const detail::AttentionPartial& out) {
  using namespace attention_impl;
  const DF d;
  const int N = static_cast<int>(hn::Lanes(d));
  const int group = p.n_heads / p.n_kv_heads;
  if (b.rows_per_head(group) >= 2 * N) {  // one KV head at a time, each on its own rows of `out`
    const int rph = b.rows_per_head(group);
    for (int gi = 0; gi < b.kv_heads; ++gi) {
      detail::AttentionBlock one = b;
      one.kv_head = b.kv_head + gi;
      one.kv_heads = 1;
      const size_t r0 = size_t(gi) * rph;
      AttendWide(p, one, {out.o + r0 * p.head_dim, out.m + r0, out.l + r0});
    }
    return false;
  }
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
  const auto narrow = [&] {
    if (p.k_type == KvType::F32) return with_keys(float{});
    if (p.k_type != p.v_type) throw std::invalid_argument("attention: keys must be f32 or of the values' storage type");
    switch (p.k_type) {
      case KvType::F16: return AttendNarrowAs<hwy::float16_t, hwy::float16_t>(p, b, out);
      case KvType::Q8_0: return AttendNarrowAs<BlockQ8_0, BlockQ8_0>(p, b, out);
      case KvType::Q4_0: return AttendNarrowAs<BlockQ4_0, BlockQ4_0>(p, b, out);
      case KvType::F32: break;
    }
  };
  narrow();
  return true;  // AttendNarrow records out.exps when asked
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
bool attend_block(const AttentionProblem& p, const AttentionBlock& b, const AttentionPartial& out) {
  return HWY_DYNAMIC_DISPATCH(AttendBlock)(p, b, out);
}
void accumulate_key_weights(const AttentionProblem& p, const float* lse, int64_t key_begin, int64_t key_end) {
  HWY_DYNAMIC_DISPATCH(KeyWeights)(p, lse, key_begin, key_end);
}
}  // namespace ropescale::detail
namespace ropescale {
std::string attention_simd_target() { return HWY_DYNAMIC_DISPATCH(detail::AttentionTargetName)(); }
}  // namespace ropescale
#endif
