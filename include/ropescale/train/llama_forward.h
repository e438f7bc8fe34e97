// The training forward of the Llama architecture the runtime runs: the same
// weights, dense ops (llama_ops.h), rotary kernel and frequencies (any scaling
// method), over one sequence from position 0, keeping every activation the
// backward pass (llama_backward.h) needs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ropescale/model/llama_model.h"
#include "ropescale/rope/cos_sin_table.h"
#include "ropescale/rope/rope_spec.h"

namespace ropescale {

// Causal softmax attention, GQA (head h reads KV head h / (H / KV)); q, k, v
// rotated already; probs [H × n × n] saved by the forward (zero above the
// diagonal). Computed in blocks of kAttentionRowBlock query rows, each reading
// only the keys it can see (sgemm, then a SIMD exponential), on up to
// `threads` threads.
inline constexpr int kAttentionRowBlock = 64;
void attention_forward(const float* q, const float* k, const float* v, float* probs, float* out, int n, int heads,
                       int kv_heads, int head_dim, int threads = 0);
// The rotary step for positions 0 … n−1 with `table`, in place on [n × heads × hd]
// (its adjoint is rotary_backward, llama_backward.h).
void rotary_forward(float* x, int n, int heads, int head_dim, int rotary_dim, PairLayout layout, const CosSinTable& table,
                    int threads);

// Every activation of one sequence, as the backward pass reads them.
struct TrainingForward {
  struct Layer {
    std::vector<float> x_in, inv1, xn1, q, k, v, probs, att, x_mid, inv2, xn2, h1, h3, g;
  };
  std::vector<Layer> layers;
  std::vector<float> x_final, inv_f, xf, logits;
  CosSinTable table;
};

// Throws std::invalid_argument for fewer than `min_tokens` tokens, ids outside
// the vocabulary, or heads that are not a multiple of the KV heads.
void check_training_tokens(const LlamaModel& m, std::span<const int> tokens, size_t min_tokens);
TrainingForward training_forward(const LlamaModel& m, const RopeSpec& rope, std::span<const int> tokens, int threads);

// Logits [n × vocab] of the training forward (for comparison with InferenceSession).
std::vector<float> llama_training_logits(const LlamaModel& m, const RopeSpec& rope, std::span<const int> tokens,
                                         int threads = 0);

}  // namespace ropescale
