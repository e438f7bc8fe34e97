// The training forward: the runtime's architecture over one sequence from
// position 0, keeping every activation the backward pass (llama_backward.cpp) needs.
#include "ropescale/train/llama_forward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "ropescale/kernels/convert.h"
#include "ropescale/kernels/rotary.h"
#include "ropescale/kernels/thread_pool.h"
#include "ropescale/model/llama_ops.h"
#include "ropescale/rope/frequencies.h"

namespace ropescale {

void attention_forward(const float* q, const float* k, const float* v, float* probs, float* out, int n, int heads,
                       int kv_heads, int hd, int threads) {
  single_threaded_blas();
  const int qd = heads * hd, kvd = kv_heads * hd, group = heads / kv_heads;
  const int blocks = (n + kAttentionRowBlock - 1) / kAttentionRowBlock;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // One task per (head, block of query rows), the longest rows first. A block
  // [i0, i1) only reads keys 0 … i1−1: the causal upper triangle past the
  // block is never computed.
  ThreadPool::global().parallel_for(heads * blocks, threads, [&](int task) {
    const int h = task % heads, b = blocks - 1 - task / heads, g = h / group;
    const int i0 = b * kAttentionRowBlock, i1 = std::min(n, i0 + kAttentionRowBlock), rows = i1 - i0;
    float* p = probs + (int64_t(h) * n + i0) * n;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, i1, hd, scale, q + int64_t(i0) * qd + h * hd, qd,
                k + g * hd, kvd, 0.0f, p, n);
    for (int r = 0; r < rows; ++r) {
      const int i = i0 + r;
      float* row = p + int64_t(r) * n;
      exp_shifted(row, size_t(i) + 1, *std::max_element(row, row + i + 1));
      double sum = 0;
      for (int j = 0; j <= i; ++j) sum += row[j];
      const float inv = static_cast<float>(1.0 / sum);
      for (int j = 0; j <= i; ++j) row[j] *= inv;
      std::fill(row + i + 1, row + n, 0.0f);  // causal
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, i1, 1.0f, p, n, v + g * hd, kvd, 0.0f,
                out + int64_t(i0) * qd + h * hd, qd);
  });
}

void rotary_forward(float* x, int n, int heads, int hd, int rotary_dim, PairLayout layout, const CosSinTable& table,
                    int threads) {
  std::vector<int64_t> positions(n);
  std::iota(positions.begin(), positions.end(), int64_t{0});
  RotaryProblem p;
  p.n_tokens = n;
  p.positions = positions.data();
  p.head_dim = hd;
  p.rotary_dim = rotary_dim;
  p.layout = layout;
  p.angles.table = &table;
  p.q = {x, DType::F32, heads, heads * hd, hd};
  apply_rotary(p, threads);
}


void check_training_tokens(const LlamaModel& m, std::span<const int> tokens, size_t min_tokens) {
  if (tokens.size() < min_tokens) throw std::invalid_argument("training: a sequence needs at least 2 tokens");
  for (int t : tokens)
    if (t < 0 || t >= m.hp.vocab_size) throw std::invalid_argument("training: token id " + std::to_string(t) + " outside the vocabulary");
  if (m.hp.n_kv_heads <= 0 || m.hp.n_heads % m.hp.n_kv_heads) throw std::invalid_argument("training: heads must be a multiple of kv_heads");
}

TrainingForward training_forward(const LlamaModel& m, const RopeSpec& rope, std::span<const int> in, int threads) {
  const auto& hp = m.hp;
  const int n = static_cast<int>(in.size()), dim = hp.dim, hd = hp.head_dim, H = hp.n_heads, KV = hp.n_kv_heads;
  const int qd = H * hd, kvd = KV * hd, hid = hp.hidden_dim;
  TrainingForward f;
  f.table = build_cos_sin_table(compute_frequencies(rope, n), 0, n);
  std::vector<float> x(size_t(n) * dim), tmp(size_t(n) * dim);
  for (int t = 0; t < n; ++t)
    std::memcpy(&x[size_t(t) * dim], &m.token_embedding[size_t(in[t]) * dim], dim * sizeof(float));
  for (const auto& w : m.layers) {
    TrainingForward::Layer a;
    a.x_in = x;
    a.inv1.resize(n), a.xn1.resize(x.size());
    rmsnorm(x.data(), w.attn_norm, a.xn1.data(), n, dim, hp.norm_eps, a.inv1.data());
    a.q.resize(size_t(n) * qd), a.k.resize(size_t(n) * kvd), a.v.resize(size_t(n) * kvd);
    matmul(a.xn1.data(), w.wq, a.q.data(), n, dim, qd, threads);
    matmul(a.xn1.data(), w.wk, a.k.data(), n, dim, kvd, threads);
    matmul(a.xn1.data(), w.wv, a.v.data(), n, dim, kvd, threads);
    rotary_forward(a.q.data(), n, H, hd, rope.rotary_dim, hp.layout, f.table, threads);
    rotary_forward(a.k.data(), n, KV, hd, rope.rotary_dim, hp.layout, f.table, threads);
    a.probs.resize(size_t(H) * n * n), a.att.resize(size_t(n) * qd);
    attention_forward(a.q.data(), a.k.data(), a.v.data(), a.probs.data(), a.att.data(), n, H, KV, hd, threads);
    matmul(a.att.data(), w.wo, tmp.data(), n, qd, dim, threads);
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
    a.x_mid = x;
    a.inv2.resize(n), a.xn2.resize(x.size());
    rmsnorm(x.data(), w.ffn_norm, a.xn2.data(), n, dim, hp.norm_eps, a.inv2.data());
    a.h1.resize(size_t(n) * hid), a.h3.resize(size_t(n) * hid);
    matmul(a.xn2.data(), w.w1, a.h1.data(), n, dim, hid, threads);
    matmul(a.xn2.data(), w.w3, a.h3.data(), n, dim, hid, threads);
    a.g = a.h1;
    swiglu(a.g.data(), a.h3.data(), a.g.size());
    matmul(a.g.data(), w.w2, tmp.data(), n, hid, dim, threads);
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
    f.layers.push_back(std::move(a));
  }
  f.x_final = x;
  f.inv_f.resize(n), f.xf.resize(x.size());
  rmsnorm(x.data(), m.final_norm, f.xf.data(), n, dim, hp.norm_eps, f.inv_f.data());
  f.logits.resize(size_t(n) * hp.vocab_size);
  matmul(f.xf.data(), m.output_weights(), f.logits.data(), n, dim, hp.vocab_size, threads);
  return f;
}

std::vector<float> llama_training_logits(const LlamaModel& m, const RopeSpec& rope, std::span<const int> tokens,
                                         int threads) {
  check_training_tokens(m, tokens, 1);
  return training_forward(m, rope, tokens, threads).logits;
}

}  // namespace ropescale
