#include "ropescale/config/hf_config.h"

#include <cmath>
#include <set>

#include "ropescale/config/error.h"
#include "ropescale/config/rope_params.h"

namespace ropescale {

using nlohmann::json;

namespace {

// First present, non-null integer among `keys` (HF attribute aliases).
std::optional<int64_t> int_field(const json& c, std::initializer_list<const char*> keys, const std::string& path) {
  for (const char* k : keys) {
    if (!c.contains(k) || c[k].is_null()) continue;
    const json& v = c[k];
    if (!v.is_number() || v.is_boolean() || v.get<double>() != std::floor(v.get<double>()) || v.get<double>() < 0 ||
        v.get<double>() > 1e15)
      throw_invalid(path, k, v.dump(), "must be a non-negative integer");
    return v.get<int64_t>();
  }
  return std::nullopt;
}

// Models whose HF code rotates interleaved (GPT-J style) pairs.
bool uses_interleaved_pairs(const std::string& model_type) {
  static const std::set<std::string> kInterleaved = {"gptj", "codegen", "chatglm", "glm", "glm4", "cohere"};
  return kInterleaved.count(model_type) > 0;
}

bool is_alibi_model(const json& c, const std::string& model_type) {
  if (model_type == "bloom") return true;
  if (c.contains("alibi") && c["alibi"].is_boolean() && c["alibi"].get<bool>()) return true;  // Falcon-RW
  if (c.contains("attn_config") && c["attn_config"].is_object()) {                         // MPT
    const json& a = c["attn_config"];
    if (a.contains("alibi") && a["alibi"].is_boolean() && a["alibi"].get<bool>()) return true;
  }
  if (c.contains("position_embedding_type") && c["position_embedding_type"] == "alibi") return true;
  return false;
}

// A rope_parameters dict keyed by layer type looks like {"full_attention": {...}, ...}.
bool is_keyed_by_layer_type(const json& d) {
  if (!d.is_object() || d.empty()) return false;
  for (auto it = d.begin(); it != d.end(); ++it)
    if (!it.value().is_object()) return false;
  return true;
}

}  // namespace

ModelConfig parse_hf_config(const std::string& text, const std::string& path) {
  json c;
  try {
    c = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e400
    throw_unreadable(path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!c.is_object()) throw_unreadable(path, "expected a JSON object at the top level of config.json");

  ModelConfig m;
  m.path = path;
  m.format = SourceFormat::HfConfig;
  m.convention = Convention::HF;
  if (c.contains("model_type") && c["model_type"].is_string()) m.architecture = c["model_type"];
  if (c.contains("_name_or_path") && c["_name_or_path"].is_string()) m.name = c["_name_or_path"];

  m.hidden_size = int_field(c, {"hidden_size", "d_model", "n_embd"}, path).value_or(0);
  m.num_attention_heads = int_field(c, {"num_attention_heads", "n_head", "n_heads"}, path).value_or(0);
  m.num_key_value_heads = int_field(c, {"num_key_value_heads", "n_kv_heads", "multi_query_group_num"}, path)
                              .value_or(m.num_attention_heads);
  m.num_hidden_layers = int_field(c, {"num_hidden_layers", "n_layer", "n_layers", "num_layers"}, path).value_or(0);
  m.vocab_size = int_field(c, {"vocab_size"}, path).value_or(0);
  m.intermediate_size = int_field(c, {"intermediate_size", "n_inner", "ffn_dim"}, path).value_or(0);
  m.rms_norm_eps = number_at(c, "rms_norm_eps", path, "");
  m.max_position_embeddings =
      int_field(c, {"max_position_embeddings", "max_seq_len", "n_positions", "seq_length"}, path).value_or(0);
  m.original_max_position_embeddings = int_field(c, {"original_max_position_embeddings"}, path);

  // head_dim: explicit (non-null) wins over hidden_size / num_attention_heads (Mistral-Nemo: 128 vs 160).
  if (auto hd = int_field(c, {"head_dim"}, path); hd && *hd > 0)
    m.head_dim = *hd;
  else if (m.num_attention_heads > 0)
    m.head_dim = m.hidden_size / m.num_attention_heads;
  m.rotary_head_dim = m.head_dim;
  // DeepSeek-V2/V3 (MLA): only qk_rope_head_dim channels are rotated.
  if (auto r = int_field(c, {"qk_rope_head_dim"}, path); r && *r > 0) {
    m.rotary_head_dim = *r;
    m.uses_mla = c.contains("kv_lora_rank") && !c["kv_lora_rank"].is_null();
  }

  if (auto prf = number_at(c, "partial_rotary_factor", path, ""); prf) m.partial_rotary_factor = *prf;
  if (auto rp = number_at(c, "rotary_pct", path, ""); rp) m.partial_rotary_factor = *rp;  // GPT-NeoX naming

  // Sliding window: Qwen2 ships sliding_window with use_sliding_window=false (inactive).
  const bool sw_disabled = c.contains("use_sliding_window") && c["use_sliding_window"].is_boolean() &&
                           !c["use_sliding_window"].get<bool>();
  if (auto sw = int_field(c, {"sliding_window"}, path); sw && *sw > 0 && !sw_disabled) {
    // Hybrid models (gpt-oss, Gemma 2/3) alternate sliding and full-attention
    // layers: the full layers see the whole context, so the window bounds nothing.
    int full = 0, total = 0;
    if (c.contains("layer_types") && c["layer_types"].is_array())
      for (const auto& t : c["layer_types"]) ++total, full += t == "full_attention";
    if (full > 0)
      m.notes.push_back("sliding window of " + std::to_string(*sw) + " tokens on " + std::to_string(total - full) + " of " +
                        std::to_string(total) + " layers; the other " + std::to_string(full) + " attend to the full context");
    else
      m.sliding_window = *sw;
  }

  m.alibi = is_alibi_model(c, m.architecture);
  if (c.contains("attn_config") && c["attn_config"].is_object())
    if (auto mb = number_at(c["attn_config"], "alibi_bias_max", path, "attn_config")) m.alibi_max_bias = *mb;
  m.layout = uses_interleaved_pairs(m.architecture) ? PairLayout::Interleaved : PairLayout::HalfSplit;

  // rope dict: rope_scaling (legacy) wins over rope_parameters when both are set (HF BC rule).
  json raw = json::object();
  if (c.contains("rope_scaling") && !c["rope_scaling"].is_null()) {
    raw = c["rope_scaling"];
    m.rope_source = "rope_scaling";
  } else if (c.contains("rope_parameters") && !c["rope_parameters"].is_null()) {
    raw = c["rope_parameters"];
    m.rope_source = "rope_parameters";
  } else {
    m.rope_source = "rope_scaling";
  }
  if (!raw.is_object()) throw_invalid(path, m.rope_source, raw.dump(), "must be a JSON object or null");

  // rope_theta lives at top level in old configs (default 10000).
  json top = json::object();
  if (c.contains("rope_theta") && !c["rope_theta"].is_null()) top["rope_theta"] = c["rope_theta"];

  if (is_keyed_by_layer_type(raw)) {
    for (auto it = raw.begin(); it != raw.end(); ++it) {
      json d = it.value();
      if (!d.contains("rope_theta") && top.contains("rope_theta")) d["rope_theta"] = top["rope_theta"];
      m.rope_parameters_by_layer_type[it.key()] = standardize_rope_parameters(d, m);
    }
    // The first full-attention entry (or the first entry) is the model's headline setting.
    auto it = m.rope_parameters_by_layer_type.find("full_attention");
    if (it == m.rope_parameters_by_layer_type.end()) it = m.rope_parameters_by_layer_type.begin();
    m.rope_parameters = it->second;
    m.rope_source += "." + it->first;
    m.rope_as_written = raw;
  } else {
    m.rope_as_written = raw;
    if (!raw.contains("rope_theta") && top.contains("rope_theta")) raw["rope_theta"] = top["rope_theta"];
    m.rope_parameters = standardize_rope_parameters(raw, m);
  }
  return m;
}

}  // namespace ropescale
