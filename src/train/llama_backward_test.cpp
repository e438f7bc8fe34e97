// Every block's backward against central finite differences of a
// double-precision twin, then the whole model against reference_llama_loss,
// and the training forward against the inference session (one architecture).
#include "ropescale/train/llama_backward.h"

#include <cmath>
#include <filesystem>
#include <functional>
#include <random>

#include <gtest/gtest.h>

#include "ropescale/model/llama_ops.h"
#include "ropescale/model/session.h"
#include "ropescale/rope/frequencies.h"
#include "ropescale/train/llama_reference.h"
#include "test_support.h"
#include "tiny_model.h"

namespace ropescale {
namespace {

std::vector<float> random_vector(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Central difference of `loss` (computed in double) with respect to x[i]; the
// step is the float-rounded one actually taken.
double numeric(std::vector<float>& x, size_t i, const std::function<double()>& loss, float h = 1e-3f) {
  const float keep = x[i];
  x[i] = keep + h;
  const float up = x[i];
  const double lu = loss();
  x[i] = keep - h;
  const float down = x[i];
  const double ld = loss();
  x[i] = keep;
  return (lu - ld) / (double(up) - double(down));
}

// |analytic − numeric| ≤ tol · max(1, |numeric|) for every coordinate (or a stride through them).
void expect_gradient(std::vector<float>& x, const std::vector<float>& analytic, const std::function<double()>& loss,
                     double tol, const std::string& what, size_t stride = 1) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < x.size(); i += stride) {
    const double num = numeric(x, i, loss);
    const double err = std::abs(analytic[i] - num) / std::max(1.0, std::abs(num));
    worst = std::max(worst, err);
    EXPECT_LE(err, tol) << what << "[" << i << "]: analytic " << analytic[i] << " numeric " << num;
  }
  ::testing::Test::RecordProperty(what, std::to_string(worst));
}

// Σ dy · f — the scalar whose gradient a block's backward computes.
double dot(const std::vector<double>& y, const std::vector<float>& dy) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * dy[i];
  return s;
}

TEST(Backward, RmsNorm) {
  const int n = 3, dim = 7;
  auto x = random_vector(n * dim, 1), w = random_vector(dim, 2), dy = random_vector(n * dim, 3);
  const float eps = 1e-5f;
  auto twin = [&] {
    std::vector<double> y(x.size());
    for (int t = 0; t < n; ++t) {
      double ss = 0;
      for (int i = 0; i < dim; ++i) ss += double(x[t * dim + i]) * x[t * dim + i];
      const double r = 1 / std::sqrt(ss / dim + eps);
      for (int i = 0; i < dim; ++i) y[t * dim + i] = x[t * dim + i] * r * w[i];
    }
    return dot(y, dy);
  };
  std::vector<float> y(x.size()), inv(n), dx(x.size()), dw(dim, 0.0f);
  ropescale::rmsnorm(x.data(), w, y.data(), n, dim, eps, inv.data());
  rmsnorm_backward(x.data(), inv.data(), w, dy.data(), dx.data(), dw.data(), n, dim);
  expect_gradient(x, dx, twin, 1e-4, "rmsnorm dx");
  expect_gradient(w, dw, twin, 1e-4, "rmsnorm dw");
}

TEST(Backward, SwiGlu) {
  const size_t n = 40;
  auto h1 = random_vector(n, 4, 2.0f), h3 = random_vector(n, 5), dg = random_vector(n, 6);
  auto twin = [&] {
    std::vector<double> g(n);
    for (size_t i = 0; i < n; ++i) g[i] = double(h1[i]) / (1 + std::exp(-double(h1[i]))) * h3[i];
    return dot(g, dg);
  };
  std::vector<float> dh1(n), dh3(n);
  swiglu_backward(h1.data(), h3.data(), dg.data(), dh1.data(), dh3.data(), n);
  expect_gradient(h1, dh1, twin, 1e-4, "swiglu dh1");
  expect_gradient(h3, dh3, twin, 1e-4, "swiglu dh3");
}

TEST(Backward, Linear) {
  const int n = 4, in = 5, out = 3;
  auto x = random_vector(n * in, 7), w = random_vector(out * in, 8), dy = random_vector(n * out, 9);
  auto twin = [&] {
    std::vector<double> y(n * out, 0.0);
    for (int t = 0; t < n; ++t)
      for (int o = 0; o < out; ++o)
        for (int i = 0; i < in; ++i) y[t * out + o] += double(x[t * in + i]) * w[o * in + i];
    return dot(y, dy);
  };
  std::vector<float> dx(x.size()), dw(w.size(), 0.0f);
  linear_backward(x.data(), w, dy.data(), dx.data(), dw.data(), n, in, out, 1);
  expect_gradient(x, dx, twin, 1e-4, "linear dx");
  expect_gradient(w, dw, twin, 1e-4, "linear dw");
}

TEST(Backward, CausalGqaAttention) {
  const int n = 5, H = 4, KV = 2, hd = 3;
  auto q = random_vector(n * H * hd, 10), k = random_vector(n * KV * hd, 11), v = random_vector(n * KV * hd, 12);
  const auto dout = random_vector(n * H * hd, 13);
  auto twin = [&] {
    std::vector<double> o(n * H * hd, 0.0);
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < n; ++i) {
        std::vector<double> s(i + 1);
        double z = 0;
        for (int j = 0; j <= i; ++j) {
          double d = 0;
          for (int c = 0; c < hd; ++c) d += double(q[(i * H + h) * hd + c]) * k[(j * KV + h / 2) * hd + c];
          z += s[j] = std::exp(d / std::sqrt(double(hd)));
        }
        for (int j = 0; j <= i; ++j)
          for (int c = 0; c < hd; ++c) o[(i * H + h) * hd + c] += s[j] / z * v[(j * KV + h / 2) * hd + c];
      }
    return dot(o, dout);
  };
  std::vector<float> probs(H * n * n), out(n * H * hd), dq(q.size()), dk(k.size()), dv(v.size());
  attention_forward(q.data(), k.data(), v.data(), probs.data(), out.data(), n, H, KV, hd);
  std::vector<double> out_d(out.begin(), out.end());
  EXPECT_NEAR(dot(out_d, dout), twin(), 1e-5);
  attention_backward(q.data(), k.data(), v.data(), probs.data(), dout.data(), dq.data(), dk.data(), dv.data(), n, H, KV, hd);
  expect_gradient(q, dq, twin, 1e-4, "attention dq");
  expect_gradient(k, dk, twin, 1e-4, "attention dk");
  expect_gradient(v, dv, twin, 1e-4, "attention dv");
}

// The blocked kernels (row blocks of kAttentionRowBlock reading only the keys
// they see) against a plain double twin of the forward and of the analytic
// backward, at lengths that cross block edges, one and two threads.
TEST(Backward, BlockedAttentionMatchesDoubleTwinAcrossRowBlocks) {
  for (int n : {1, 63, 64, 65, 150}) {
    const int H = 4, KV = 2, hd = 8, group = H / KV;
    const auto q = random_vector(n * H * hd, 20 + n), k = random_vector(n * KV * hd, 21 + n),
               v = random_vector(n * KV * hd, 22 + n), dout = random_vector(n * H * hd, 23 + n);
    // Twin: P = softmax(q kᵀ / √hd) causal, O = P V; dP = dO Vᵀ, dS = P ∘ (dP − Σ P∘dP) / √hd,
    // dQ = dS K, dK = dSᵀ Q, dV = Pᵀ dO.
    std::vector<double> o(q.size(), 0.0), dq(q.size(), 0.0), dk(k.size(), 0.0), dv(v.size(), 0.0);
    const double scale = 1.0 / std::sqrt(double(hd));
    for (int h = 0; h < H; ++h) {
      const int g = h / group;
      for (int i = 0; i < n; ++i) {
        std::vector<double> p(i + 1), dp(i + 1);
        double z = 0, mx = -1e300;
        for (int j = 0; j <= i; ++j) {
          double d = 0;
          for (int c = 0; c < hd; ++c) d += double(q[(i * H + h) * hd + c]) * k[(j * KV + g) * hd + c];
          mx = std::max(mx, p[j] = d * scale);
        }
        for (int j = 0; j <= i; ++j) z += p[j] = std::exp(p[j] - mx);
        double pdp = 0;
        for (int j = 0; j <= i; ++j) {
          p[j] /= z;
          double d = 0;
          for (int c = 0; c < hd; ++c) {
            o[(i * H + h) * hd + c] += p[j] * v[(j * KV + g) * hd + c];
            d += double(dout[(i * H + h) * hd + c]) * v[(j * KV + g) * hd + c];
            dv[(j * KV + g) * hd + c] += p[j] * dout[(i * H + h) * hd + c];
          }
          pdp += p[j] * (dp[j] = d);
        }
        for (int j = 0; j <= i; ++j) {
          const double ds = p[j] * (dp[j] - pdp) * scale;
          for (int c = 0; c < hd; ++c) {
            dq[(i * H + h) * hd + c] += ds * k[(j * KV + g) * hd + c];
            dk[(j * KV + g) * hd + c] += ds * q[(i * H + h) * hd + c];
          }
        }
      }
    }
    for (int threads : {1, 2}) {
      std::vector<float> probs(size_t(H) * n * n, 7.0f), out(q.size()), gq(q.size()), gk(k.size(), 5.0f), gv(v.size(), 5.0f);
      attention_forward(q.data(), k.data(), v.data(), probs.data(), out.data(), n, H, KV, hd, threads);
      attention_backward(q.data(), k.data(), v.data(), probs.data(), dout.data(), gq.data(), gk.data(), gv.data(), n, H, KV,
                         hd, threads);
      const auto expect_close = [&](const std::vector<float>& got, const std::vector<double>& want, const char* what) {
        double worst = 0;
        for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]) / (1.0 + std::abs(want[i])));
        EXPECT_LT(worst, 2e-5) << what << ", n " << n << ", threads " << threads;
      };
      expect_close(out, o, "output");
      expect_close(gq, dq, "dq");
      expect_close(gk, dk, "dk");
      expect_close(gv, dv, "dv");
      for (int h = 0; h < H; ++h)  // the saved probabilities are zero above the diagonal
        for (int i = 0; i < n; ++i)
          for (int j = i + 1; j < n; ++j) ASSERT_EQ(probs[(size_t(h) * n + i) * n + j], 0.0f) << h << " " << i << " " << j;
    }
  }
}

TEST(Backward, RotaryBothLayoutsPartialWithAttentionFactor) {
  for (PairLayout layout : {PairLayout::HalfSplit, PairLayout::Interleaved}) {
    const int n = 6, heads = 3, hd = 10, d = 6;
    RopeSpec spec;
    spec.type = RopeType::Yarn;
    spec.factor = 4;
    spec.original_max_position = 4;
    spec.head_dim = hd, spec.rotary_dim = d;
    const RopeFrequencies f = compute_frequencies(spec, n);
    ASSERT_GT(f.attention_factor, 1.1);
    const CosSinTable table = build_cos_sin_table(f, 0, n);
    auto x = random_vector(n * heads * hd, 14);
    const auto dy = random_vector(x.size(), 15);
    auto twin = [&] {
      std::vector<double> y(x.begin(), x.end());
      for (int t = 0; t < n; ++t)
        for (int h = 0; h < heads; ++h)
          for (int j = 0; j < d / 2; ++j) {
            const int i0 = layout == PairLayout::Interleaved ? 2 * j : j, i1 = layout == PairLayout::Interleaved ? 2 * j + 1 : j + d / 2;
            const double a = t * f.inv_freq[j], c = std::cos(a) * f.attention_factor, s = std::sin(a) * f.attention_factor;
            double* v = &y[(t * heads + h) * hd];
            const double x0 = v[i0], x1 = v[i1];
            v[i0] = x0 * c - x1 * s;
            v[i1] = x1 * c + x0 * s;
          }
      return dot(y, dy);
    };
    std::vector<float> dx = dy;
    rotary_backward(dx.data(), n, heads, hd, d, layout, table, 1);
    expect_gradient(x, dx, twin, 1e-4, layout == PairLayout::HalfSplit ? "rotary half-split dx" : "rotary interleaved dx");
  }
}

TEST(Backward, CrossEntropy) {
  const int n = 3, V = 6;
  auto logits = random_vector(n * V, 16, 2.0f);
  const std::vector<int> targets{2, 0, 5};
  auto twin = [&] {
    double loss = 0;
    for (int t = 0; t < n; ++t) {
      double z = 0;
      for (int v = 0; v < V; ++v) z += std::exp(double(logits[t * V + v]));
      loss += std::log(z) - logits[t * V + targets[t]];
    }
    return loss / n;
  };
  std::vector<float> d(logits.size());
  EXPECT_NEAR(cross_entropy(logits.data(), targets, V, d.data()), twin(), 1e-6);
  expect_gradient(logits, d, twin, 1e-4, "cross-entropy dlogits");
}

// The whole model: every weight's gradient against finite differences of the
// double twin, for plain RoPE and YaRN (attention factor ≠ 1), both layouts, GQA, tied and untied.
TEST(Backward, WholeModelGradientCheck) {
  struct Case {
    const char* name;
    const char* rope;
    PairLayout layout;
    bool tied;
  };
  for (const Case& c : {Case{"plain", "", PairLayout::Interleaved, true},
                        Case{"yarn4", R"({"rope_type":"yarn","factor":4})", PairLayout::HalfSplit, false},
                        Case{"dynamic2", R"({"rope_type":"dynamic","factor":2})", PairLayout::Interleaved, false}}) {
    LlamaModel m = test::tiny_llama(/*dim*/ 12, /*hidden*/ 20, /*layers*/ 2, /*heads*/ 2, /*kv*/ 1, /*vocab*/ 11,
                                    /*trained*/ 4, /*seed*/ 3, /*scale*/ 0.4f);
    m.hp.layout = c.layout;
    for (auto& l : m.layers) l.attn_norm = random_vector(12, 20, 0.3f), l.ffn_norm = random_vector(12, 21, 0.3f);
    for (auto& l : m.layers)
      for (auto& v : l.attn_norm) v += 1.0f;
    if (!c.tied) m.classifier = random_vector(11 * 12, 22, 0.4f);
    const RopeSpec spec = [&] {
      RopeSpec s = rope_spec_for_model(m, c.rope);
      s.layout = c.layout;
      return s;
    }();
    const std::vector<int> tokens{1, 5, 3, 9, 0, 7, 7, 2, 10};  // 8 predictions, twice the trained 4
    LlamaModel g = zero_gradients(m);
    const double loss = llama_loss_and_gradients(m, spec, tokens, &g, 1.0f, 1);
    EXPECT_NEAR(loss, reference_llama_loss(m, spec, tokens), 1e-5) << c.rope;
    auto twin = [&] { return reference_llama_loss(m, spec, tokens); };
    const std::string tag = std::string(c.name) + (c.layout == PairLayout::HalfSplit ? " half" : " interleaved");
    expect_gradient(m.token_embedding, g.token_embedding, twin, 2e-3, tag + " embedding");
    if (!c.tied) expect_gradient(m.classifier, g.classifier, twin, 2e-3, tag + " classifier", 3);
    expect_gradient(m.final_norm, g.final_norm, twin, 2e-3, tag + " final_norm");
    for (size_t l = 0; l < m.layers.size(); ++l) {
      auto& w = m.layers[l];
      auto& d = g.layers[l];
      const std::string p = tag + " layer " + std::to_string(l) + " ";
      expect_gradient(w.attn_norm, d.attn_norm, twin, 2e-3, p + "attn_norm");
      expect_gradient(w.wq, d.wq, twin, 2e-3, p + "wq", 2);
      expect_gradient(w.wk, d.wk, twin, 2e-3, p + "wk", 2);
      expect_gradient(w.wv, d.wv, twin, 2e-3, p + "wv", 2);
      expect_gradient(w.wo, d.wo, twin, 2e-3, p + "wo", 2);
      expect_gradient(w.ffn_norm, d.ffn_norm, twin, 2e-3, p + "ffn_norm");
      expect_gradient(w.w1, d.w1, twin, 2e-3, p + "w1", 3);
      expect_gradient(w.w2, d.w2, twin, 2e-3, p + "w2", 3);
      expect_gradient(w.w3, d.w3, twin, 2e-3, p + "w3", 3);
    }
  }
}

TEST(Backward, TrainingForwardIsTheRuntimeForward) {
  const auto path = test::shared_dir() / "models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "SKIPPED LOUDLY: " << path << " is absent";
  const LlamaModel m = load_model(path.string());
  std::vector<int> ids(700);
  std::mt19937 rng(5);
  for (auto& t : ids) t = 3 + int(rng() % 500);
  for (const char* rope : {"", R"({"rope_type":"yarn","factor":2})"}) {
    const RopeSpec spec = rope_spec_for_model(m, rope);
    const auto train = llama_training_logits(m, spec, ids);
    SessionOptions so;
    so.rope = spec;
    so.max_context = 700;
    so.chunk = 700;  // one chunk: the same length for the frequencies
    InferenceSession s(m, so);
    const auto infer = s.forward(ids, true);
    ASSERT_EQ(train.size(), infer.size());
    double worst = 0;
    for (size_t i = 0; i < train.size(); ++i) worst = std::max(worst, double(std::abs(train[i] - infer[i])));
    EXPECT_LT(worst, 2e-4) << rope;
  }
}

}  // namespace
}  // namespace ropescale
