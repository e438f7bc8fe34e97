#include "ropescale/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "ropescale/kernels/convert.h"
#include "ropescale/kernels/rotary.h"
#include "ropescale/kernels/thread_pool.h"

namespace ropescale {

namespace {

void check(const AttentionProblem& p) {
  if (p.n_queries < 0 || p.keys_before < 0) throw std::invalid_argument("attention: negative sizes");
  if (p.n_heads <= 0 || p.n_kv_heads <= 0 || p.n_heads % p.n_kv_heads != 0 || p.head_dim <= 0)
    throw std::invalid_argument("attention: n_heads must be a positive multiple of n_kv_heads");
  if (p.n_queries > 0 && (!p.q || !p.k || !p.v || !p.out)) throw std::invalid_argument("attention: null buffer");
}

constexpr int kTile = 64;

// Row `i` of group `g` as f32: a pointer into f32 storage, or converted into `tmp`.
const float* kv_row(const void* base, KvType type, int64_t i, int64_t stride, int64_t offset, int hd, float* tmp) {
  if (type == KvType::F32) return static_cast<const float*>(base) + i * stride + offset;
  f16_to_f32(static_cast<const uint16_t*>(base) + i * stride + offset, tmp, hd);
  return tmp;
}

// One (query, head): online softmax over tiles of kTile keys (Milakov & Gimelshein 2018).
void attend_one(const AttentionProblem& p, int t, int h, float* scores, float* tmp) {
  const int hd = p.head_dim, group = p.n_heads / p.n_kv_heads, g = h / group;
  const int64_t n_keys = p.keys_before + t + 1;
  const int64_t kv_stride = int64_t(p.n_kv_heads) * hd;
  const float* q = p.q + (int64_t(t) * p.n_heads + h) * hd;
  float* out = p.out + (int64_t(t) * p.n_heads + h) * hd;
  float running_max = -std::numeric_limits<float>::infinity(), running_sum = 0.0f;
  std::fill(out, out + hd, 0.0f);
  for (int64_t i0 = 0; i0 < n_keys; i0 += kTile) {
    const int n = static_cast<int>(std::min<int64_t>(kTile, n_keys - i0));
    float tile_max = -std::numeric_limits<float>::infinity();
    for (int i = 0; i < n; ++i) {
      const float* k = kv_row(p.k, p.k_type, i0 + i, kv_stride, int64_t(g) * hd, hd, tmp);
      float s = 0.0f;
      for (int c = 0; c < hd; ++c) s += q[c] * k[c];
      scores[i] = s * p.scale;
      tile_max = std::max(tile_max, scores[i]);
    }
    const float new_max = std::max(running_max, tile_max);
    const float correction = std::exp(running_max - new_max);  // 0 on the first tile
    running_sum *= correction;
    for (int c = 0; c < hd; ++c) out[c] *= correction;
    exp_shifted(scores, n, new_max);  // scores[i] ← exp(scores[i] − max), vectorized
    for (int i = 0; i < n; ++i) {
      const float w = scores[i];
      running_sum += w;
      const float* v = kv_row(p.v, p.v_type, i0 + i, kv_stride, int64_t(g) * hd, hd, tmp);
      for (int c = 0; c < hd; ++c) out[c] += w * v[c];
    }
    running_max = new_max;
  }
  const float inv = 1.0f / running_sum;
  for (int c = 0; c < hd; ++c) out[c] *= inv;
}

}  // namespace

void attention_scalar(const AttentionProblem& p) {
  check(p);
  const int hd = p.head_dim, group = p.n_heads / p.n_kv_heads;
  const int64_t kv_stride = int64_t(p.n_kv_heads) * hd;
  for (int t = 0; t < p.n_queries; ++t)
    for (int h = 0; h < p.n_heads; ++h) {
      const int g = h / group;
      const int64_t n_keys = p.keys_before + t + 1;
      const float* q = p.q + (int64_t(t) * p.n_heads + h) * hd;
      std::vector<double> s(n_keys);
      double mx = -std::numeric_limits<double>::infinity();
      auto at = [&](const void* base, KvType type, int64_t i, int c) {
        const int64_t e = i * kv_stride + int64_t(g) * hd + c;
        return type == KvType::F32 ? double(static_cast<const float*>(base)[e])
                                   : double(f16_to_float(static_cast<const uint16_t*>(base)[e]));
      };
      for (int64_t i = 0; i < n_keys; ++i) {
        double dot = 0;
        for (int c = 0; c < hd; ++c) dot += double(q[c]) * at(p.k, p.k_type, i, c);
        s[i] = dot * p.scale;
        mx = std::max(mx, s[i]);
      }
      double sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - mx));
      float* out = p.out + (int64_t(t) * p.n_heads + h) * hd;
      for (int c = 0; c < hd; ++c) {
        double acc = 0;
        for (int64_t i = 0; i < n_keys; ++i) acc += s[i] * at(p.v, p.v_type, i, c);
        out[c] = static_cast<float>(acc / sum);
      }
    }
}

void attention(const AttentionProblem& p, int threads) {
  check(p);
  const int items = p.n_queries * p.n_heads;
  if (items == 0) return;
  ThreadPool& pool = ThreadPool::global();
  const int n = pool.threads_for(threads);
  const int64_t work = int64_t(items) * (p.keys_before + p.n_queries) * p.head_dim;
  const int chunks = (n > 1 && work > (int64_t{1} << 16)) ? std::min(items, n * 4) : 1;
  pool.parallel_for(chunks, [&](int c) {
    thread_local std::vector<float> scores(kTile), tmp;
    tmp.resize(p.head_dim);
    for (int it = items * c / chunks; it < items * (c + 1) / chunks; ++it)
      attend_one(p, it / p.n_heads, it % p.n_heads, scores.data(), tmp.data());
  });
}

}  // namespace ropescale
