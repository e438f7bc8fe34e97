#include "ropescale/config/model_config.h"

#include <cstring>
#include <filesystem>
#include <limits>

#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/gguf.h"
#include "ropescale/config/hf_config.h"
#include "ropescale/config/llama2c_header.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/config/model_shape.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

using nlohmann::json;

std::string_view to_string(SourceFormat f) {
  switch (f) {
    case SourceFormat::HfConfig: return "hf-config";
    case SourceFormat::Gguf: return "gguf";
    case SourceFormat::Llama2c: return "llama2c";
  }
  return "?";
}

int64_t ModelConfig::trained_context() const {
  const json& p = rope_parameters;
  const RopeTypeInfo* info = rope_row_of(p);
  if (info && info->type != RopeType::Default && p.contains("original_max_position_embeddings") &&
      p["original_max_position_embeddings"].is_number_integer())
    return p["original_max_position_embeddings"].get<int64_t>();
  if (original_max_position_embeddings) return *original_max_position_embeddings;
  return max_position_embeddings;
}

int ModelConfig::rotary_dim() const {
  double prf = partial_rotary_factor;
  if (rope_parameters.contains("partial_rotary_factor") && rope_parameters["partial_rotary_factor"].is_number())
    prf = rope_parameters["partial_rotary_factor"].get<double>();
  // A file can claim any factor or rotary count: out of int's range the value saturates and
  // RopeSpec validation names it (negative or NaN → −1, "must be an even number >= 2"; huge →
  // INT_MAX, "absurd"), never an undefined conversion.
  const double d = rotary_head_dim * prf;
  if (!(d >= 0)) return -1;
  if (d >= static_cast<double>(std::numeric_limits<int>::max())) return std::numeric_limits<int>::max();
  return static_cast<int>(d);
}

ModelConfig load_model_config(const std::string& path_in, GgufRopeSource gguf_rope) {
  std::string path = path_in;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    path = (std::filesystem::path(path) / "config.json").string();
    if (!std::filesystem::exists(path, ec))
      throw_unreadable(path_in, "is a directory without a config.json");
  }
  MappedFile file(path);
  const auto b = file.bytes();
  if (b.empty()) throw_unreadable(path, "file is empty");
  if (b.size() >= 4 && std::memcmp(b.data(), "GGUF", 4) == 0) {
    ModelConfig c = model_config_from_gguf(b, path, gguf_rope);
    require_valid_model_shape(c);  // a model file states its whole shape
    return c;
  }

  uint32_t magic = 0;
  if (b.size() >= 4) std::memcpy(&magic, b.data(), 4);
  size_t first = 0;
  while (first < b.size() && (b[first] == ' ' || b[first] == '\n' || b[first] == '\r' || b[first] == '\t')) ++first;
  const bool looks_json = first < b.size() && (b[first] == '{' || b[first] == '[');
  if (looks_json) return parse_hf_config(std::string(reinterpret_cast<const char*>(b.data()), b.size()), path);
  if (magic == kLlama2cMagic) return model_config_from_llama2c(parse_llama2c_header(b, path), path);
  // Legacy llama2.c has no magic: accept only when the header and the file size agree.
  try {
    return model_config_from_llama2c(parse_llama2c_header(b, path), path);
  } catch (const ConfigError& e) {
    const std::string ext = std::filesystem::path(path).extension().string();
    if (ext == ".bin") throw;  // a .bin is meant as llama2.c: its header error is the useful one
    throw_unreadable(path, "not a config.json, a GGUF file or a llama2.c checkpoint");
  }
}

json parse_rope_override(const std::string& text) {
  json o;
  try {
    o = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e400
    throw_unreadable("--rope-scaling", std::string("not valid JSON (") + e.what() + ")");
  }
  if (!o.is_object()) throw_unreadable("--rope-scaling", "expected a JSON object such as {\"rope_type\":\"yarn\",\"factor\":4}");
  return o;
}

json read_rope_dict_file(const std::string& path) {
  json j = json::parse(read_file_text(path), nullptr, false);
  if (j.is_discarded()) throw_unreadable(path, "is not valid JSON (a rope setting or a document holding rope_scaling)");
  if (j.is_object() && j.contains("rope_scaling") && j["rope_scaling"].is_object()) j = j["rope_scaling"];
  else if (j.is_object() && j.contains("rope_parameters") && j["rope_parameters"].is_object()) j = j["rope_parameters"];
  if (!j.is_object()) throw_invalid(path, "rope_scaling", safe_dump(j).substr(0, 60), "must be a JSON object");
  return j;
}

void apply_rope_override(ModelConfig& cfg, const std::string& text) {
  apply_rope_setting(cfg, parse_rope_override(text), "--rope-scaling");
}

void apply_rope_setting(ModelConfig& cfg, nlohmann::json o, const std::string& source) {
  if (!o.contains("rope_theta") && cfg.rope_parameters.contains("rope_theta"))
    o["rope_theta"] = cfg.rope_parameters["rope_theta"];
  if (!o.contains("partial_rotary_factor") && cfg.rope_parameters.contains("partial_rotary_factor"))
    o["partial_rotary_factor"] = cfg.rope_parameters["partial_rotary_factor"];
  cfg.rope_as_written = o;
  cfg.rope_source = source;
  // An override speaks for the model as a whole, and its lengths are its own.
  ModelConfig without_top_level = cfg;
  without_top_level.original_max_position_embeddings.reset();
  cfg.rope_parameters = standardize_rope_parameters(o, without_top_level);
  cfg.rope_parameters_by_layer_type.clear();
  // A scaled GGUF/llama3 rope_freqs tensor belongs to the model's own setting.
  const RopeTypeInfo* info = rope_row_of(cfg.rope_parameters);
  if (!info || info->type != RopeType::Default) cfg.freq_divisors.clear();
}

RopeSpec rope_spec_for(const ModelConfig& cfg, const std::string& layer_type) {
  if (cfg.alibi)
    throw_invalid(cfg.path, "model_type", "\"" + cfg.architecture + "\"",
                  "this model uses ALiBi position biases, not RoPE; there are no rotary frequencies");
  if (cfg.rotary_head_dim <= 0)
    throw_invalid(cfg.path, "head_dim", std::to_string(cfg.rotary_head_dim),
                  "cannot derive the head dimension (set head_dim, or hidden_size and num_attention_heads)");
  if (!layer_type.empty()) {
    auto it = cfg.rope_parameters_by_layer_type.find(layer_type);
    if (it == cfg.rope_parameters_by_layer_type.end())
      throw_invalid(cfg.path, "rope_parameters." + layer_type, "(missing)", "no such layer type in this config");
    return rope_spec_from_parameters(it->second, cfg, "rope_parameters." + layer_type);
  }
  return rope_spec_from_parameters(cfg.rope_parameters, cfg, cfg.rope_source);
}

}  // namespace ropescale
