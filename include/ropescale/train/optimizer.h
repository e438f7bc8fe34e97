// AdamW with decoupled weight decay (on matrices: embeddings, projections,
// classifier; not norms), a warm-up + cosine learning-rate schedule, and
// global-norm gradient clipping, over weight_tensors() of a LlamaModel
// (gradients and moments are LlamaModel-shaped too).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ropescale/model/llama_model.h"

namespace ropescale {

struct Schedule {
  double lr = 1e-3, min_lr = 1e-4;
  int64_t warmup = 100, total = 1000;
  // Linear warm-up from lr/warmup to lr, then cosine to min_lr at `total`.
  double at(int64_t step) const;
};

struct AdamW {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  LlamaModel m, v;   // first and second moments (zero_gradients shape)
  int64_t steps = 0; // updates applied (bias correction)

  explicit AdamW(const LlamaModel& model);
  // One update with learning rate `lr`.
  void step(LlamaModel& model, LlamaModel& grad, double lr);
};

// Scales `grad` so its global L2 norm is at most `max_norm` (0 = no clipping);
// returns the norm before clipping.
double clip_gradients(LlamaModel& grad, double max_norm);

}  // namespace ropescale
