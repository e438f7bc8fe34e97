// A Llama-family model in memory: hyperparameters and f32 weights, whatever
// file it came from. Tensor layouts are PyTorch's (out, in) row-major.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ropescale/config/gguf.h"
#include "ropescale/config/model_config.h"
#include "ropescale/config/rope_setting.h"
#include "ropescale/rope/rope_spec.h"

namespace ropescale {

struct LlamaHParams {
  int dim = 0;          // model width
  int hidden_dim = 0;   // SwiGLU width
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;
  int head_dim = 0;
  int trained_context = 0;    // the context the model was trained at
  float norm_eps = 1e-5f;
  double rope_theta = 10000.0;
  PairLayout layout = PairLayout::Interleaved;  // how this file's Q/K rows pair channels
};

struct LlamaLayerWeights {
  std::vector<float> attn_norm;             // [dim]
  std::vector<float> wq, wk, wv, wo;        // [H·hd, dim], [KV·hd, dim] ×2, [dim, H·hd]
  std::vector<float> ffn_norm;              // [dim]
  std::vector<float> w1, w2, w3;            // [hidden, dim], [dim, hidden], [hidden, dim]
};

struct LlamaModel {
  std::string path;
  LlamaHParams hp;
  // The file's own position setup (rope dict, trained context, layout), as
  // `inspect` reads it: a converted model carries its scaling with it.
  ModelConfig position;
  std::vector<float> token_embedding;       // [vocab, dim]
  std::vector<LlamaLayerWeights> layers;
  std::vector<float> final_norm;            // [dim]
  std::vector<float> classifier;            // [vocab, dim]; empty = tied to token_embedding
  const std::vector<float>& output_weights() const { return classifier.empty() ? token_embedding : classifier; }
};

// One weight tensor of a LlamaModel, by reference.
struct WeightTensor {
  std::vector<float>* values;
  std::string name;  // "token_embedding", "layers.3.wq", …
  bool matrix;       // projections and embeddings (weight decay applies); false for norms
};
// Every weight tensor of `m` in a fixed order (the classifier only when untied):
// what optimizers, gradient buffers and checkpoints walk.
std::vector<WeightTensor> weight_tensors(LlamaModel& m);


// llama2.c checkpoint (legacy v0 or "ak42" v1 fp32). Throws ConfigError naming
// the file when it is truncated or inconsistent.
LlamaModel load_llama2c_model(const std::string& path);

// The llama2.c v1 ("ak42", fp32) file of `m`: header with the trained context
// as seq_len, weights in llama2.c's order, Q/K rows in Meta order. The format
// has no place for a rope setting: the file runs as plain RoPE θ = 10000.
std::vector<uint8_t> serialize_llama2c_model(const LlamaModel& m);

// GGUF (llama architecture; F32, F16, BF16, Q8_0 tensors). Throws ConfigError.
// `gguf_rope`: which of the file's two rope records to believe (gguf.h).
LlamaModel load_gguf_model(const std::string& path, GgufRopeSource gguf_rope = GgufRopeSource::Agree);

// The model's own RoPE setting, or a request override given as the JSON a user
// passes to vLLM (e.g. {"rope_type":"yarn","factor":8}), resolved once;
// original lengths default to the model's trained context. Throws ConfigError.
RopeSetting rope_setting_for_model(const LlamaModel& m, const std::string& rope_scaling_json = "", std::string label = "");
RopeSetting rope_setting_for_model(const LlamaModel& m, const nlohmann::json& rope_dict, std::string label);
// Its spec alone.
RopeSpec rope_spec_for_model(const LlamaModel& m, const std::string& rope_scaling_json = "");

// The shape a model file's metadata describes (no weights are read).
LlamaHParams hparams_from_config(const ModelConfig& c);

// A model as its config describes it — shape, trained length, rope facts —
// with no weights: what an evaluation of a model served elsewhere (an endpoint)
// needs to resolve rope settings and label its report. Any file load_model
// takes; only the config or the GGUF metadata is read. Throws ConfigError.
LlamaModel describe_model(const std::string& path, GgufRopeSource gguf_rope = GgufRopeSource::Agree);

// Any supported model file (src/model/load_model.cpp): an HF directory or
// config.json, else by content (GGUF magic, else llama2.c). Throws ConfigError.
LlamaModel load_model(const std::string& path, GgufRopeSource gguf_rope = GgufRopeSource::Agree);

}  // namespace ropescale
