#include "ropescale/train/llama_reference.h"

#include <cmath>
#include <vector>

#include "ropescale/rope/frequencies.h"

namespace ropescale {

namespace {

using Mat = std::vector<double>;  // row-major

// y[n × out] = x[n × in] · W[out × in]ᵀ
Mat linear(const Mat& x, const std::vector<float>& w, int n, int in, int out) {
  Mat y(size_t(n) * out, 0.0);
  for (int t = 0; t < n; ++t)
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int i = 0; i < in; ++i) s += x[size_t(t) * in + i] * double(w[size_t(o) * in + i]);
      y[size_t(t) * out + o] = s;
    }
  return y;
}

Mat rmsnorm(const Mat& x, const std::vector<float>& w, int n, int dim, double eps) {
  Mat y(x.size());
  for (int t = 0; t < n; ++t) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += x[size_t(t) * dim + i] * x[size_t(t) * dim + i];
    const double r = 1.0 / std::sqrt(ss / dim + eps);
    for (int i = 0; i < dim; ++i) y[size_t(t) * dim + i] = x[size_t(t) * dim + i] * r * double(w[i]);
  }
  return y;
}

// Rotate each head's pairs by position · inv_freq, times the attention factor.
void rope(Mat& x, int n, int heads, int hd, const RopeSpec& spec, const RopeFrequencies& f) {
  const int d = spec.rotary_dim, half = d / 2;
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < heads; ++h) {
      double* v = &x[(size_t(t) * heads + h) * hd];
      for (int j = 0; j < half; ++j) {
        const double a = double(t) * f.inv_freq[j];
        const double c = std::cos(a) * f.attention_factor, s = std::sin(a) * f.attention_factor;
        const int i0 = spec.layout == PairLayout::Interleaved ? 2 * j : j;
        const int i1 = spec.layout == PairLayout::Interleaved ? 2 * j + 1 : j + half;
        const double x0 = v[i0], x1 = v[i1];
        v[i0] = x0 * c - x1 * s;
        v[i1] = x1 * c + x0 * s;
      }
    }
}

}  // namespace

double reference_llama_loss(const LlamaModel& m, const RopeSpec& spec, std::span<const int> tokens) {
  const auto& hp = m.hp;
  const int n = static_cast<int>(tokens.size()) - 1, dim = hp.dim, hd = hp.head_dim, H = hp.n_heads, KV = hp.n_kv_heads;
  const int hid = hp.hidden_dim, V = hp.vocab_size, group = H / KV;
  RopeSpec layout_spec = spec;
  layout_spec.layout = hp.layout;  // the weights' pairing decides the channels
  const RopeFrequencies f = compute_frequencies(spec, n);
  Mat x(size_t(n) * dim);
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < dim; ++i) x[size_t(t) * dim + i] = m.token_embedding[size_t(tokens[t]) * dim + i];
  for (const auto& w : m.layers) {
    const Mat xn = rmsnorm(x, w.attn_norm, n, dim, hp.norm_eps);
    Mat q = linear(xn, w.wq, n, dim, H * hd), k = linear(xn, w.wk, n, dim, KV * hd);
    const Mat v = linear(xn, w.wv, n, dim, KV * hd);
    rope(q, n, H, hd, layout_spec, f);
    rope(k, n, KV, hd, layout_spec, f);
    Mat att(size_t(n) * H * hd, 0.0);
    for (int h = 0; h < H; ++h) {
      const int g = h / group;
      for (int i = 0; i < n; ++i) {
        std::vector<double> s(i + 1);
        double mx = -1e300;
        for (int j = 0; j <= i; ++j) {
          double dot = 0;
          for (int c = 0; c < hd; ++c) dot += q[(size_t(i) * H + h) * hd + c] * k[(size_t(j) * KV + g) * hd + c];
          s[j] = dot / std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (auto& e : s) z += e = std::exp(e - mx);
        for (int j = 0; j <= i; ++j)
          for (int c = 0; c < hd; ++c) att[(size_t(i) * H + h) * hd + c] += s[j] / z * v[(size_t(j) * KV + g) * hd + c];
      }
    }
    const Mat o = linear(att, w.wo, n, H * hd, dim);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    const Mat xn2 = rmsnorm(x, w.ffn_norm, n, dim, hp.norm_eps);
    Mat h1 = linear(xn2, w.w1, n, dim, hid);
    const Mat h3 = linear(xn2, w.w3, n, dim, hid);
    for (size_t i = 0; i < h1.size(); ++i) h1[i] = h1[i] / (1.0 + std::exp(-h1[i])) * h3[i];
    const Mat y = linear(h1, w.w2, n, hid, dim);
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
  }
  const Mat logits = linear(rmsnorm(x, m.final_norm, n, dim, hp.norm_eps), m.output_weights(), n, dim, V);
  double loss = 0;
  for (int t = 0; t < n; ++t) {
    double mx = -1e300, z = 0;
    for (int v = 0; v < V; ++v) mx = std::max(mx, logits[size_t(t) * V + v]);
    for (int v = 0; v < V; ++v) z += std::exp(logits[size_t(t) * V + v] - mx);
    loss += std::log(z) + mx - logits[size_t(t) * V + tokens[t + 1]];
  }
  return loss / n;
}

}  // namespace ropescale
