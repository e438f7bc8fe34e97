// Small Llama models built in tests: every tensor sized from the
// hyperparameters, weights drawn from a seeded normal (or set by the test).
#pragma once

#include <random>

#include "ropescale/config/llama2c_header.h"
#include "ropescale/model/llama_model.h"

namespace ropescale::test {

inline LlamaModel tiny_llama(int dim, int hidden, int layers, int heads, int kv_heads, int vocab, int trained,
                             uint64_t seed = 1, float scale = 0.2f) {
  Llama2cHeader h;
  h.dim = dim, h.hidden_dim = hidden, h.n_layers = layers, h.n_heads = heads, h.n_kv_heads = kv_heads;
  h.vocab_size = vocab, h.seq_len = trained;
  LlamaModel m;
  m.path = "(built in the test)";
  m.position = model_config_from_llama2c(h, m.path);
  auto& hp = m.hp;
  hp.dim = dim, hp.hidden_dim = hidden, hp.n_layers = layers, hp.n_heads = heads, hp.n_kv_heads = kv_heads;
  hp.vocab_size = vocab, hp.head_dim = dim / heads, hp.trained_context = trained;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  auto fill = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
  };
  const size_t qd = size_t(heads) * hp.head_dim, kvd = size_t(kv_heads) * hp.head_dim;
  m.token_embedding = fill(size_t(vocab) * dim);
  for (int l = 0; l < layers; ++l) {
    LlamaLayerWeights w;
    w.attn_norm.assign(dim, 1.0f);
    w.ffn_norm.assign(dim, 1.0f);
    w.wq = fill(qd * dim), w.wk = fill(kvd * dim), w.wv = fill(kvd * dim), w.wo = fill(dim * qd);
    w.w1 = fill(size_t(hidden) * dim), w.w3 = fill(size_t(hidden) * dim), w.w2 = fill(size_t(dim) * hidden);
    m.layers.push_back(std::move(w));
  }
  m.final_norm.assign(dim, 1.0f);
  return m;
}

}  // namespace ropescale::test
