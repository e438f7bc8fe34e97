#include "ropescale/train/optimizer.h"

#include <cmath>

#include "ropescale/train/llama_backward.h"

namespace ropescale {

void for_each_tensor(LlamaModel& a, LlamaModel& b,
                     const std::function<void(std::vector<float>&, std::vector<float>&, const std::string&, bool)>& f) {
  f(a.token_embedding, b.token_embedding, "token_embedding", true);
  for (size_t l = 0; l < a.layers.size(); ++l) {
    auto &x = a.layers[l], &y = b.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    f(x.attn_norm, y.attn_norm, p + "attn_norm", false);
    f(x.wq, y.wq, p + "wq", true);
    f(x.wk, y.wk, p + "wk", true);
    f(x.wv, y.wv, p + "wv", true);
    f(x.wo, y.wo, p + "wo", true);
    f(x.ffn_norm, y.ffn_norm, p + "ffn_norm", false);
    f(x.w1, y.w1, p + "w1", true);
    f(x.w2, y.w2, p + "w2", true);
    f(x.w3, y.w3, p + "w3", true);
  }
  f(a.final_norm, b.final_norm, "final_norm", false);
  if (!a.classifier.empty()) f(a.classifier, b.classifier, "classifier", true);
}

double Schedule::at(int64_t step) const {
  if (warmup > 0 && step < warmup) return lr * double(step + 1) / double(warmup);
  if (step >= total) return min_lr;
  const double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

AdamW::AdamW(const LlamaModel& model) : m(zero_gradients(model)), v(zero_gradients(model)) {}

void AdamW::step(LlamaModel& model, LlamaModel& grad, double lr) {
  ++steps;
  const double c1 = 1.0 - std::pow(beta1, double(steps)), c2 = 1.0 - std::pow(beta2, double(steps));
  LlamaModel* moments[2] = {&m, &v};
  // Walk weights with gradients, and the two moment sets in the same order.
  std::vector<std::vector<float>*> ms, vs;
  for_each_tensor(*moments[0], *moments[1], [&](std::vector<float>& a, std::vector<float>& b, const std::string&, bool) {
    ms.push_back(&a);
    vs.push_back(&b);
  });
  size_t i = 0;
  for_each_tensor(model, grad, [&](std::vector<float>& w, std::vector<float>& g, const std::string&, bool decays) {
    auto& mt = *ms[i];
    auto& vt = *vs[i];
    ++i;
    const float decay = decays ? static_cast<float>(1.0 - lr * weight_decay) : 1.0f;
    for (size_t k = 0; k < w.size(); ++k) {
      mt[k] = static_cast<float>(beta1 * mt[k] + (1 - beta1) * g[k]);
      vt[k] = static_cast<float>(beta2 * vt[k] + (1 - beta2) * double(g[k]) * g[k]);
      const double update = (mt[k] / c1) / (std::sqrt(vt[k] / c2) + eps);
      w[k] = static_cast<float>(w[k] * decay - lr * update);
    }
  });
}

double clip_gradients(LlamaModel& grad, double max_norm) {
  double ss = 0;
  LlamaModel& g = grad;
  for_each_tensor(g, g, [&](std::vector<float>& a, std::vector<float>&, const std::string&, bool) {
    for (float x : a) ss += double(x) * x;
  });
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float s = static_cast<float>(max_norm / norm);
    for_each_tensor(g, g, [&](std::vector<float>& a, std::vector<float>&, const std::string&, bool) {
      for (float& x : a) x *= s;
    });
  }
  return norm;
}

}  // namespace ropescale
