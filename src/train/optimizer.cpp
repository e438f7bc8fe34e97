#include "ropescale/train/optimizer.h"

#include <cmath>

#include "ropescale/train/llama_backward.h"

namespace ropescale {

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
  const auto w = weight_tensors(model), g = weight_tensors(grad), mt = weight_tensors(m), vt = weight_tensors(v);
  for (size_t i = 0; i < w.size(); ++i) {
    auto &wi = *w[i].values, &gi = *g[i].values, &mi = *mt[i].values, &vi = *vt[i].values;
    const float decay = w[i].matrix ? static_cast<float>(1.0 - lr * weight_decay) : 1.0f;
    for (size_t k = 0; k < wi.size(); ++k) {
      mi[k] = static_cast<float>(beta1 * mi[k] + (1 - beta1) * gi[k]);
      vi[k] = static_cast<float>(beta2 * vi[k] + (1 - beta2) * double(gi[k]) * gi[k]);
      const double update = (mi[k] / c1) / (std::sqrt(vi[k] / c2) + eps);
      wi[k] = static_cast<float>(wi[k] * decay - lr * update);
    }
  }
}

double clip_gradients(LlamaModel& grad, double max_norm) {
  const auto tensors = weight_tensors(grad);
  double ss = 0;
  for (const auto& t : tensors)
    for (float x : *t.values) ss += double(x) * x;
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float s = static_cast<float>(max_norm / norm);
    for (const auto& t : tensors)
      for (float& x : *t.values) x *= s;
  }
  return norm;
}

}  // namespace ropescale
