// Training-time forward and backward of the Llama architecture the runtime
// runs: the same weights (LlamaModel), the same dense ops (llama_ops.h), the
// same rotary kernel and frequencies (any scaling method), over one sequence
// from position 0 with every activation kept for the backward pass.
//
// Each block's backward is a function of its own, so tests can check each one
// against finite differences of a double-precision twin (llama_reference.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ropescale/kernels/activation.h"
#include "ropescale/model/llama_model.h"
#include "ropescale/train/llama_forward.h"
#include "ropescale/rope/cos_sin_table.h"
#include "ropescale/rope/rope_spec.h"

namespace ropescale {

// ---- block backwards (float; dx is written, dw accumulated) -------------------
// y = x · inv_rms · w per row; inv_rms from the forward.
void rmsnorm_backward(const float* x, const float* inv_rms, const std::vector<float>& w, const float* dy, float* dx,
                      float* dw, int n, int dim);
// g = silu(h1) · h3 → dh1, dh3: swiglu_backward() in kernels/activation.h.
// Y = X Wᵀ: dX = dY W (when dx is non-null), dW += dYᵀ X.
void linear_backward(const float* x, const std::vector<float>& w, const float* dy, float* dx, float* dw, int n, int in,
                     int out, int threads);
// The backward of attention_forward (llama_forward.h), from the probabilities it saved.
void attention_backward(const float* q, const float* k, const float* v, const float* probs, const float* dout, float* dq,
                        float* dk, float* dv, int n, int heads, int kv_heads, int head_dim, int threads = 0);
// The adjoint of rotary_forward: the transpose rotation (the same cos, negated sin).
void rotary_backward(float* dx, int n, int heads, int head_dim, int rotary_dim, PairLayout layout,
                     const CosSinTable& table, int threads);

// Mean cross-entropy of `targets` under `logits` [n × vocab]; dlogits = ∂loss/∂logits.
double cross_entropy(const float* logits, std::span<const int> targets, int vocab, float* dlogits);

// ---- the whole model ---------------------------------------------------------
// A zero tensor for every weight of `m` (same shapes; classifier only if untied).
LlamaModel zero_gradients(const LlamaModel& m);

// Mean next-token cross-entropy of tokens[1 … n] given tokens[0 … n−1] (one
// sequence from position 0, RoPE by `rope` at length n); adds
// grad_scale · ∂loss/∂w into `grad` (skipped when null). Returns the loss.
double llama_loss_and_gradients(const LlamaModel& m, const RopeSpec& rope, std::span<const int> tokens, LlamaModel* grad,
                                float grad_scale = 1.0f, int threads = 0);

}  // namespace ropescale
