#include "ropescale/model/llama_model.h"

namespace ropescale {

std::vector<WeightTensor> weight_tensors(LlamaModel& m) {
  std::vector<WeightTensor> t{{&m.token_embedding, "token_embedding", true}};
  for (size_t l = 0; l < m.layers.size(); ++l) {
    auto& x = m.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    t.insert(t.end(), {{&x.attn_norm, p + "attn_norm", false}, {&x.wq, p + "wq", true}, {&x.wk, p + "wk", true},
                       {&x.wv, p + "wv", true}, {&x.wo, p + "wo", true}, {&x.ffn_norm, p + "ffn_norm", false},
                       {&x.w1, p + "w1", true}, {&x.w2, p + "w2", true}, {&x.w3, p + "w3", true}});
  }
  t.push_back({&m.final_norm, "final_norm", false});
  if (!m.classifier.empty()) t.push_back({&m.classifier, "classifier", true});
  return t;
}

LlamaHParams hparams_from_config(const ModelConfig& c) {
  LlamaHParams hp;
  hp.dim = int(c.hidden_size);
  hp.hidden_dim = int(c.intermediate_size);
  hp.n_layers = int(c.num_hidden_layers);
  hp.n_heads = int(c.num_attention_heads);
  hp.n_kv_heads = int(c.num_key_value_heads);
  hp.head_dim = int(c.head_dim);
  hp.vocab_size = int(c.vocab_size);
  hp.trained_context = int(c.trained_context());
  hp.layout = c.layout;
  hp.rope_theta = c.rope_parameters.contains("rope_theta") && c.rope_parameters["rope_theta"].is_number()
                      ? c.rope_parameters["rope_theta"].get<double>()
                      : 10000.0;
  hp.norm_eps = static_cast<float>(c.rms_norm_eps.value_or(hp.norm_eps));
  return hp;
}

namespace {
// The model's position facts; an override's original length defaults to the context it was trained at.
ModelConfig position_of(const LlamaModel& m) {
  ModelConfig c = m.position;
  c.max_position_embeddings = m.hp.trained_context;
  return c;
}
}  // namespace

RopeSetting rope_setting_for_model(const LlamaModel& m, const std::string& rope_scaling_json, std::string label) {
  return resolve_rope_setting(position_of(m), rope_scaling_json, std::move(label));
}

RopeSetting rope_setting_for_model(const LlamaModel& m, const nlohmann::json& rope_dict, std::string label) {
  return resolve_rope_setting(position_of(m), rope_dict, std::move(label));
}

RopeSpec rope_spec_for_model(const LlamaModel& m, const std::string& rope_scaling_json) {
  return rope_setting_for_model(m, rope_scaling_json).spec;
}

}  // namespace ropescale
