#include "ropescale/kernels/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "ropescale/kernels/dtype.h"
#include "ropescale/kernels/thread_pool.h"
#include "attention_block.h"

namespace ropescale {

namespace {

void check(const AttentionProblem& p) {
  if (p.n_queries < 0 || p.keys_before < 0) throw std::invalid_argument("attention: negative sizes");
  if (p.n_heads <= 0 || p.n_kv_heads <= 0 || p.n_heads % p.n_kv_heads != 0 || p.head_dim <= 0)
    throw std::invalid_argument("attention: n_heads must be a positive multiple of n_kv_heads");
  if (p.keys_before + p.n_queries > int64_t{1} << 30)
    throw std::invalid_argument("attention: more than 2^30 positions");
  if (p.n_queries > 0 && (!p.q || !p.k || !p.v || !p.out)) throw std::invalid_argument("attention: null buffer");
  if (!kv_type_fits(p.k_type, p.head_dim) || !kv_type_fits(p.v_type, p.head_dim))
    throw std::invalid_argument("attention: quantized K/V need head_dim a multiple of 32");
  if (p.k_type != p.v_type && p.k_type != KvType::F32)
    throw std::invalid_argument("attention: keys must be f32 or of the values' storage type");
}

}  // namespace

void detail::query_for_keys(KvType k_type, const float* q, float* out, int head_dim) {
  if (!is_quantized(k_type)) {
    std::copy(q, q + head_dim, out);
    return;
  }
  thread_local std::vector<BlockQ8_0> blocks;
  blocks.resize(size_t(head_dim) / kQuantBlock);
  kv_store_rows(KvType::Q8_0, q, blocks.data(), 1, head_dim);
  kv_load_rows(KvType::Q8_0, blocks.data(), out, 1, head_dim);
}

void attention_scalar(const AttentionProblem& p) {
  check(p);
  const int hd = p.head_dim, group = p.n_heads / p.n_kv_heads;
  const size_t k_row = kv_row_bytes(p.k_type, hd), v_row = kv_row_bytes(p.v_type, hd);
  std::vector<float> kr(hd), vr(hd), qr(hd);
  const auto row = [&](const void* base, size_t row_bytes, int64_t i, int g) {
    return static_cast<const char*>(base) + (i * p.n_kv_heads + g) * int64_t(row_bytes);
  };
  for (int t = 0; t < p.n_queries; ++t)
    for (int h = 0; h < p.n_heads; ++h) {
      const int g = h / group;
      const int64_t n_keys = p.keys_before + t + 1;
      detail::query_for_keys(p.k_type, p.q + (int64_t(t) * p.n_heads + h) * hd, qr.data(), hd);
      const float* q = qr.data();
      std::vector<double> s(n_keys);
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t i = 0; i < n_keys; ++i) {
        kv_load_rows(p.k_type, row(p.k, k_row, i, g), kr.data(), 1, hd);
        double dot = 0;
        for (int c = 0; c < hd; ++c) dot += double(q[c]) * kr[c];
        s[i] = dot * p.scale;
        mx = std::max(mx, s[i]);
      }
      double sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - mx));
      std::vector<double> acc(hd, 0.0);
      for (int64_t i = 0; i < n_keys; ++i) {
        kv_load_rows(p.v_type, row(p.v, v_row, i, g), vr.data(), 1, hd);
        for (int c = 0; c < hd; ++c) acc[c] += s[i] * vr[c];
      }
      float* out = p.out + (int64_t(t) * p.n_heads + h) * hd;
      for (int c = 0; c < hd; ++c) out[c] = static_cast<float>(acc[c] / sum);
      if (p.lse) p.lse[int64_t(t) * p.n_heads + h] = static_cast<float>(mx + std::log(sum));
      if (p.key_weight)
        for (int64_t i = 0; i < n_keys; ++i) p.key_weight[i] += static_cast<float>(s[i] / sum);
    }
}

void merge_attention(const float* a, const float* lse_a, const float* b, const float* lse_b, float* out, int64_t rows,
                     int head_dim) {
  for (int64_t r = 0; r < rows; ++r) {
    const float m = std::max(lse_a[r], lse_b[r]);
    const float wa = std::exp(lse_a[r] - m), wb = std::exp(lse_b[r] - m), inv = 1.0f / (wa + wb);
    for (int c = 0; c < head_dim; ++c) {
      const int64_t i = r * head_dim + c;
      out[i] = (wa * a[i] + wb * b[i]) * inv;
    }
  }
}

namespace {

// Decode-shaped problems (at most this many queries, this many recorded floats) take H2O's key weights
// from the softmax numerators the kernel computes anyway; larger ones (prefill chunks, where that
// would be a score matrix) recompute the scores against the finished log-sum-exps.
constexpr int kRecordedQueries = 4;
constexpr int64_t kRecordedFloats = int64_t{1} << 22;  // 16 MiB: 32 query heads at 128K keys

// The blocked attention. With `exps`, `tile_m` (AttentionPartial's) the blocks also record their
// softmax numerators; returns whether every block did.
bool attend(const AttentionProblem& p, int threads, float* exps = nullptr, float* tile_m = nullptr) {
  const int group = p.n_heads / p.n_kv_heads, hd = p.head_dim;
  // Blocks of ~64 rows (queries × heads of one KV group): enough rows to reuse
  // every K/V load 64 times, few enough that Qᵀ, Oᵀ and a tile of scores stay
  // in L1/L2.
  const int block_queries = std::max(1, 64 / group);
  const int query_blocks = (p.n_queries + block_queries - 1) / block_queries;
  const int heads_per_block = std::min(p.n_queries, block_queries) * group <= detail::kAllHeadsRows ? p.n_kv_heads : 1;
  const int head_blocks = p.n_kv_heads / heads_per_block;
  const int blocks = query_blocks * head_blocks;
  ThreadPool& pool = ThreadPool::global();
  const int64_t keys = p.keys_before + p.n_queries;
  const int64_t work = int64_t(p.n_queries) * p.n_heads * keys * hd;
  const int n_threads = work < (int64_t{1} << 17) ? 1 : pool.threads_for(threads);
  // Too few blocks for the threads (decode, short chunks): split each block's
  // keys into ranges of whole tiles and merge the partial softmax sums.
  int splits = 1;
  if (n_threads > 1 && blocks < 2 * n_threads)
    splits = static_cast<int>(std::min<int64_t>((2 * n_threads + blocks - 1) / blocks, std::max<int64_t>(1, keys / (4 * detail::kKeyTile))));
  const int64_t tiles = (keys + detail::kKeyTile - 1) / detail::kKeyTile;
  const int rows_max = block_queries * group * heads_per_block;
  const size_t part_floats = size_t(rows_max) * (hd + 2);
  std::vector<float> parts(splits > 1 ? size_t(blocks) * splits * part_floats : 0);
  const auto block_of = [&](int i) {  // the latest queries (most keys) first
    const int qb = query_blocks - 1 - i / head_blocks;
    detail::AttentionBlock b;
    b.kv_head = i % head_blocks * heads_per_block;
    b.kv_heads = heads_per_block;
    b.t0 = qb * block_queries;
    b.t1 = std::min(p.n_queries, b.t0 + block_queries);
    return b;
  };
  const auto partial_at = [&](float* base, int rows) {
    return detail::AttentionPartial{base, base + size_t(rows) * hd, base + size_t(rows) * (hd + 1), exps, tile_m, keys};
  };
  const auto finish = [&](const detail::AttentionBlock& b, const detail::AttentionPartial* part, int n_parts) {
    for (int r = 0; r < b.rows(group); ++r) {
      const int t = b.query(r, group), h = b.head(r, group);
      float* out = p.out + (int64_t(t) * p.n_heads + h) * hd;
      float m = detail::kNoScore;
      for (int s = 0; s < n_parts; ++s) m = std::max(m, part[s].m[r]);
      float l = 0;
      std::fill(out, out + hd, 0.0f);
      for (int s = 0; s < n_parts; ++s) {
        const float w = std::exp(part[s].m[r] - m);
        l += w * part[s].l[r];
        const float* o = part[s].o + size_t(r) * hd;
        for (int c = 0; c < hd; ++c) out[c] += w * o[c];
      }
      const float inv = 1.0f / l;
      for (int c = 0; c < hd; ++c) out[c] *= inv;
      if (p.lse) p.lse[int64_t(t) * p.n_heads + h] = m + std::log(l);
    }
  };
  const int tasks = blocks * splits;
  std::atomic<bool> recorded{exps != nullptr};
  const auto run = [&](int task) {
    detail::AttentionBlock b = block_of(task / splits);
    const int s = task % splits;
    b.key_begin = tiles * s / splits * detail::kKeyTile;
    b.key_end = std::min(keys, tiles * (s + 1) / splits * detail::kKeyTile);
    if (splits == 1) {
      thread_local std::vector<float> own;
      own.resize(part_floats);
      const detail::AttentionPartial part = partial_at(own.data(), b.rows(group));
      if (!detail::attend_block(p, b, part)) recorded = false;
      finish(b, &part, 1);
    } else if (!detail::attend_block(p, b, partial_at(parts.data() + size_t(task) * part_floats, b.rows(group)))) {
      recorded = false;
    }
  };
  pool.parallel_for(tasks, n_threads, run);
  if (splits > 1) {
    const auto merge = [&](int i) {
      const detail::AttentionBlock b = block_of(i);
      std::vector<detail::AttentionPartial> part(splits);
      for (int s = 0; s < splits; ++s) part[s] = partial_at(parts.data() + (size_t(i) * splits + s) * part_floats, b.rows(group));
      finish(b, part.data(), splits);
    };
    for (int i = 0; i < blocks; ++i) merge(i);
  }
  return recorded;
}

}  // namespace

void attention(const AttentionProblem& p, int threads) {
  check(p);
  if (p.n_queries == 0) return;
  if (!p.key_weight) {
    attend(p, threads);
    return;
  }
  // The attention with its log-sum-exps, then each key's weight Σ_{t,h} exp(score − lse).
  std::vector<float> own_lse(p.lse ? 0 : size_t(p.n_queries) * p.n_heads);
  AttentionProblem first = p;
  first.key_weight = nullptr;
  if (!p.lse) first.lse = own_lse.data();
  const int64_t keys = p.keys_before + p.n_queries, tiles = (keys + detail::kKeyTile - 1) / detail::kKeyTile;
  const int64_t rows = int64_t(p.n_queries) * p.n_heads;
  bool recorded = false;
  if (p.n_queries <= kRecordedQueries && rows * keys <= kRecordedFloats) {
    thread_local std::vector<float> exps, tile_m;  // reused: a decode step's rows × keys
    exps.resize(size_t(rows * keys));
    tile_m.resize(size_t(rows * tiles));
    recorded = attend(first, threads, exps.data(), tile_m.data());
    if (recorded)  // exp(score − m_tile) · exp(m_tile − lse), a factor per row and tile
      for (int64_t row = 0; row < rows; ++row) {
        const int64_t visible = p.keys_before + row / p.n_heads + 1;  // query t sees keys [0, keys_before + t]
        const float* e = exps.data() + row * keys;
        for (int64_t i = 0; i * detail::kKeyTile < visible; ++i) {
          const float f = std::exp(tile_m[size_t(row * tiles + i)] - first.lse[row]);
          for (int64_t j = i * detail::kKeyTile; j < std::min(visible, (i + 1) * detail::kKeyTile); ++j) p.key_weight[j] += e[j] * f;
        }
      }
  } else {
    attend(first, threads);
  }
  if (recorded) return;
  // Recomputed (prefill chunks; or a target whose narrow vectors sent a decode block down the wide path).
  const int64_t work = int64_t(p.n_queries) * p.n_heads * keys * p.head_dim;
  ThreadPool& pool = ThreadPool::global();
  const int n_threads = work < (int64_t{1} << 17) ? 1 : pool.threads_for(threads);
  const int tasks = static_cast<int>(std::min<int64_t>(tiles, 4 * int64_t(n_threads)));
  pool.parallel_for(tasks, n_threads, [&](int i) {  // disjoint key ranges: no two tasks add to one key
    const int64_t begin = tiles * i / tasks * detail::kKeyTile, end = std::min(keys, tiles * (i + 1) / tasks * detail::kKeyTile);
    detail::accumulate_key_weights(p, first.lse, begin, end);
  });
}

}  // namespace ropescale
