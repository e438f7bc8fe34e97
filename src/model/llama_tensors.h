// The per-layer tensors of a Llama model, once: their field, their names in
// GGUF (llama.cpp) and Hugging Face checkpoints, and their PyTorch shape
// (out, in). Readers and writers of both formats iterate this table; GGUF
// lists dimensions in reverse (ne0 = in).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ropescale/model/llama_model.h"

namespace ropescale::detail {

enum class Dim { Model, Q, KV, Hidden };  // dim, H·hd, KV·hd, hidden_dim

struct LayerTensor {
  std::vector<float> LlamaLayerWeights::*field;
  const char* gguf;  // after "blk.N."
  const char* hf;    // after "model.layers.N."
  std::vector<Dim> shape;  // PyTorch (out, in); one entry for norms
  int qk_heads = 0;        // 1 = Q rows (n_heads), 2 = K rows (n_kv_heads): permuted between layouts
};

inline const std::vector<LayerTensor>& layer_tensors() {
  using W = LlamaLayerWeights;
  static const std::vector<LayerTensor> t = {
      {&W::attn_norm, "attn_norm.weight", "input_layernorm.weight", {Dim::Model}},
      {&W::wq, "attn_q.weight", "self_attn.q_proj.weight", {Dim::Q, Dim::Model}, 1},
      {&W::wk, "attn_k.weight", "self_attn.k_proj.weight", {Dim::KV, Dim::Model}, 2},
      {&W::wv, "attn_v.weight", "self_attn.v_proj.weight", {Dim::KV, Dim::Model}},
      {&W::wo, "attn_output.weight", "self_attn.o_proj.weight", {Dim::Model, Dim::Q}},
      {&W::ffn_norm, "ffn_norm.weight", "post_attention_layernorm.weight", {Dim::Model}},
      {&W::w1, "ffn_gate.weight", "mlp.gate_proj.weight", {Dim::Hidden, Dim::Model}},
      {&W::w2, "ffn_down.weight", "mlp.down_proj.weight", {Dim::Model, Dim::Hidden}},
      {&W::w3, "ffn_up.weight", "mlp.up_proj.weight", {Dim::Hidden, Dim::Model}},
  };
  return t;
}

inline uint64_t size_of(Dim d, const LlamaHParams& hp) {
  switch (d) {
    case Dim::Model: return uint64_t(hp.dim);
    case Dim::Q: return uint64_t(hp.n_heads) * hp.head_dim;
    case Dim::KV: return uint64_t(hp.n_kv_heads) * hp.head_dim;
    case Dim::Hidden: return uint64_t(hp.hidden_dim);
  }
  return 0;
}

// PyTorch shape (out, in), or reversed for GGUF.
inline std::vector<uint64_t> shape_of(const LayerTensor& t, const LlamaHParams& hp, bool gguf) {
  std::vector<uint64_t> s;
  for (Dim d : t.shape) s.push_back(size_of(d, hp));
  if (gguf) std::reverse(s.begin(), s.end());
  return s;
}

// The highest layer index among tensor names "<prefix>N.…" (blk.N. in GGUF,
// model.layers.N. in HF checkpoints); −1 when there are none. Used to refuse
// files holding more layers than their metadata counts.
template <class Names>
int64_t highest_layer_index(const Names& names, const std::string& prefix) {
  int64_t best = -1;
  for (const std::string& n : names) {
    if (n.compare(0, prefix.size(), prefix) != 0) continue;
    int64_t v = 0;
    size_t i = prefix.size();
    for (; i < n.size() && n[i] >= '0' && n[i] <= '9' && v < (int64_t{1} << 40); ++i) v = v * 10 + (n[i] - '0');
    if (i > prefix.size() && i < n.size() && n[i] == '.') best = std::max(best, v);
  }
  return best;
}

inline int heads_of(const LayerTensor& t, const LlamaHParams& hp) { return t.qk_heads == 1 ? hp.n_heads : hp.n_kv_heads; }

}  // namespace ropescale::detail
