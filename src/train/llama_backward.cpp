#include "ropescale/train/llama_backward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "ropescale/kernels/convert.h"
#include "ropescale/kernels/rotary.h"
#include "ropescale/kernels/thread_pool.h"
#include "ropescale/model/llama_ops.h"
#include "ropescale/rope/frequencies.h"

namespace ropescale {

void rmsnorm_backward(const float* x, const float* inv_rms, const std::vector<float>& w, const float* dy, float* dx,
                      float* dw, int n, int dim) {
  // y_i = x_i r w_i, r = (mean x² + eps)^(−1/2), ∂r/∂x_j = −r³ x_j / dim:
  // dx_j = r (dy_j w_j) − x_j r³ / dim · Σ_i dy_i w_i x_i.
  for (int t = 0; t < n; ++t) {
    const float* xr = x + int64_t(t) * dim;
    const float* g = dy + int64_t(t) * dim;
    const double r = inv_rms[t];
    double dot = 0;
    for (int i = 0; i < dim; ++i) dot += double(g[i]) * w[i] * xr[i];
    const double c = r * r * r * dot / dim;
    for (int i = 0; i < dim; ++i) {
      dx[int64_t(t) * dim + i] = static_cast<float>(r * g[i] * w[i] - c * xr[i]);
      dw[i] += static_cast<float>(g[i] * xr[i] * r);
    }
  }
}

void linear_backward(const float* x, const std::vector<float>& w, const float* dy, float* dx, float* dw, int n, int in,
                     int out, int threads) {
  single_threaded_blas();
  ThreadPool& pool = ThreadPool::global();
  const int t = pool.threads_for(threads);
  const bool big = int64_t(n) * in * out >= (int64_t{1} << 20);
  if (dx) {
    const int parts = big && n >= 2 * t ? t : 1;
    pool.parallel_for(parts, [&](int i) {
      const int r0 = n * i / parts, r1 = n * (i + 1) / parts;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, in, out, 1.0f, dy + int64_t(r0) * out, out,
                  w.data(), in, 0.0f, dx + int64_t(r0) * in, in);
    });
  }
  const int parts = big && out >= 64 ? t : 1;
  pool.parallel_for(parts, [&](int i) {
    const int o0 = out * i / parts, o1 = out * (i + 1) / parts;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, in, n, 1.0f, dy + o0, out, x, in, 1.0f,
                dw + int64_t(o0) * in, in);
  });
}

void attention_backward(const float* q, const float* k, const float* v, const float* probs, const float* dout, float* dq,
                        float* dk, float* dv, int n, int heads, int kv_heads, int hd, int threads) {
  single_threaded_blas();
  const int qd = heads * hd, kvd = kv_heads * hd, group = heads / kv_heads;
  const int blocks = (n + kAttentionRowBlock - 1) / kAttentionRowBlock;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::fill(dk, dk + int64_t(n) * kvd, 0.0f);
  std::fill(dv, dv + int64_t(n) * kvd, 0.0f);
  // One KV head per task: its query heads write disjoint dq columns and share
  // its dk, dv. Blocks of query rows [i0, i1) as in the forward, reading and
  // writing only keys 0 … i1−1.
  ThreadPool::global().parallel_for(kv_heads, threads, [&](int g) {
    std::vector<float> ds(size_t(kAttentionRowBlock) * n);
    for (int h = g * group; h < (g + 1) * group; ++h)
      for (int b = 0; b < blocks; ++b) {
        const int i0 = b * kAttentionRowBlock, i1 = std::min(n, i0 + kAttentionRowBlock), rows = i1 - i0;
        const float* p = probs + (int64_t(h) * n + i0) * n;
        const float* dout_b = dout + int64_t(i0) * qd + h * hd;
        // dP = dO Vᵀ; dV += Pᵀ dO; dS = P ∘ (dP − rowsum(P ∘ dP)) · scale.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, i1, hd, 1.0f, dout_b, qd, v + g * hd, kvd, 0.0f,
                    ds.data(), n);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1, hd, rows, 1.0f, p, n, dout_b, qd, 1.0f, dv + g * hd, kvd);
        for (int r = 0; r < rows; ++r) {
          const int i = i0 + r;
          const float* pr = p + int64_t(r) * n;
          float* dr = ds.data() + int64_t(r) * n;
          double dot = 0;
          for (int j = 0; j <= i; ++j) dot += double(pr[j]) * dr[j];
          for (int j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - static_cast<float>(dot)) * scale;
          std::fill(dr + i + 1, dr + i1, 0.0f);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, i1, 1.0f, ds.data(), n, k + g * hd, kvd, 0.0f,
                    dq + int64_t(i0) * qd + h * hd, qd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1, hd, rows, 1.0f, ds.data(), n, q + int64_t(i0) * qd + h * hd,
                    qd, 1.0f, dk + g * hd, kvd);
      }
  });
}

void rotary_backward(float* dx, int n, int heads, int hd, int rotary_dim, PairLayout layout, const CosSinTable& table,
                     int threads) {
  CosSinTable adjoint = table;  // m·R(θ)ᵀ = m·R(−θ)
  for (auto& s : adjoint.sin) s = -s;
  rotary_forward(dx, n, heads, hd, rotary_dim, layout, adjoint, threads);
}

double cross_entropy(const float* logits, std::span<const int> targets, int vocab, float* dlogits) {
  const int n = static_cast<int>(targets.size());
  std::vector<float> own(dlogits ? 0 : size_t(vocab));
  double loss = 0;
  for (int t = 0; t < n; ++t) {
    const float* row = logits + int64_t(t) * vocab;
    float* e = dlogits ? dlogits + int64_t(t) * vocab : own.data();  // e^(row − max), then the gradient
    const float mx = *std::max_element(row, row + vocab);
    std::copy(row, row + vocab, e);
    exp_shifted(e, size_t(vocab), mx);
    double sum = 0;
    for (int v = 0; v < vocab; ++v) sum += e[v];
    loss += std::log(sum) + mx - row[targets[t]];
    if (dlogits) {
      const float inv = static_cast<float>(1.0 / (sum * n));
      for (int v = 0; v < vocab; ++v) e[v] *= inv;
      e[targets[t]] -= 1.0f / n;
    }
  }
  return loss / n;
}

LlamaModel zero_gradients(const LlamaModel& m) {
  LlamaModel g = m;
  for (const auto& t : weight_tensors(g)) std::fill(t.values->begin(), t.values->end(), 0.0f);
  return g;
}

double llama_loss_and_gradients(const LlamaModel& m, const RopeSpec& rope, std::span<const int> tokens, LlamaModel* grad,
                                float grad_scale, int threads) {
  check_training_tokens(m, tokens, 2);
  const auto& hp = m.hp;
  const auto in = tokens.first(tokens.size() - 1);
  const auto targets = tokens.subspan(1);
  const int n = static_cast<int>(in.size()), dim = hp.dim, hd = hp.head_dim, H = hp.n_heads, KV = hp.n_kv_heads;
  const int qd = H * hd, kvd = KV * hd, hid = hp.hidden_dim, V = hp.vocab_size;
  TrainingForward f = training_forward(m, rope, in, threads);
  std::vector<float> dlogits(f.logits.size());
  const double loss = cross_entropy(f.logits.data(), targets, V, grad ? dlogits.data() : nullptr);
  if (!grad) return loss;
  if (grad_scale != 1.0f)
    for (auto& d : dlogits) d *= grad_scale;

  // Classifier and final norm.
  std::vector<float> dxf(size_t(n) * dim), dx(size_t(n) * dim), dtmp(size_t(n) * dim);
  float* dw_out = m.classifier.empty() ? grad->token_embedding.data() : grad->classifier.data();
  linear_backward(f.xf.data(), m.output_weights(), dlogits.data(), dxf.data(), dw_out, n, dim, V, threads);
  rmsnorm_backward(f.x_final.data(), f.inv_f.data(), m.final_norm, dxf.data(), dx.data(), grad->final_norm.data(), n, dim);

  std::vector<float> dg(size_t(n) * hid), dh1(dg.size()), dh3(dg.size()), datt(size_t(n) * qd), dq(size_t(n) * qd),
      dk(size_t(n) * kvd), dv(size_t(n) * kvd), dxn(size_t(n) * dim);
  for (int l = hp.n_layers - 1; l >= 0; --l) {
    const auto& w = m.layers[l];
    auto& gw = grad->layers[l];
    const auto& a = f.layers[l];
    // FFN: x_out = x_mid + W2 · swiglu(W1 xn2, W3 xn2).
    linear_backward(a.g.data(), w.w2, dx.data(), dg.data(), gw.w2.data(), n, hid, dim, threads);
    swiglu_backward(a.h1.data(), a.h3.data(), dg.data(), dh1.data(), dh3.data(), dg.size());
    linear_backward(a.xn2.data(), w.w1, dh1.data(), dxn.data(), gw.w1.data(), n, dim, hid, threads);
    linear_backward(a.xn2.data(), w.w3, dh3.data(), dtmp.data(), gw.w3.data(), n, dim, hid, threads);
    for (size_t i = 0; i < dxn.size(); ++i) dxn[i] += dtmp[i];
    rmsnorm_backward(a.x_mid.data(), a.inv2.data(), w.ffn_norm, dxn.data(), dtmp.data(), gw.ffn_norm.data(), n, dim);
    for (size_t i = 0; i < dx.size(); ++i) dx[i] += dtmp[i];  // dx is now ∂/∂x_mid
    // Attention: x_mid = x_in + Wo · attention(rope(Wq xn1), rope(Wk xn1), Wv xn1).
    linear_backward(a.att.data(), w.wo, dx.data(), datt.data(), gw.wo.data(), n, qd, dim, threads);
    attention_backward(a.q.data(), a.k.data(), a.v.data(), a.probs.data(), datt.data(), dq.data(), dk.data(), dv.data(), n,
                       H, KV, hd, threads);
    rotary_backward(dq.data(), n, H, hd, rope.rotary_dim, hp.layout, f.table, threads);
    rotary_backward(dk.data(), n, KV, hd, rope.rotary_dim, hp.layout, f.table, threads);
    linear_backward(a.xn1.data(), w.wq, dq.data(), dxn.data(), gw.wq.data(), n, dim, qd, threads);
    linear_backward(a.xn1.data(), w.wk, dk.data(), dtmp.data(), gw.wk.data(), n, dim, kvd, threads);
    for (size_t i = 0; i < dxn.size(); ++i) dxn[i] += dtmp[i];
    linear_backward(a.xn1.data(), w.wv, dv.data(), dtmp.data(), gw.wv.data(), n, dim, kvd, threads);
    for (size_t i = 0; i < dxn.size(); ++i) dxn[i] += dtmp[i];
    rmsnorm_backward(a.x_in.data(), a.inv1.data(), w.attn_norm, dxn.data(), dtmp.data(), gw.attn_norm.data(), n, dim);
    for (size_t i = 0; i < dx.size(); ++i) dx[i] += dtmp[i];  // dx is now ∂/∂x_in
  }
  for (int t = 0; t < n; ++t) {
    float* row = grad->token_embedding.data() + size_t(in[t]) * dim;
    for (int i = 0; i < dim; ++i) row[i] += dx[size_t(t) * dim + i];
  }
  return loss;
}

}  // namespace ropescale
