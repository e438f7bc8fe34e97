// ModelConfig: the position-encoding facts of one model, whatever file they
// came from (HF config.json, GGUF metadata, llama2.c header), in one shape.
// The rope setting is kept as a Hugging Face–standardized `rope_parameters`
// dict (rope-reference.md §1.1), so `check` can judge keys exactly as HF does
// and every source goes through one path to a RopeSpec.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropescale/rope/rope_spec.h"

namespace ropescale {

// A GGUF that ropescale wrote carries its rope setting twice: verbatim as
// ropescale.rope_parameters and as the llama.cpp keys/tensors llama.cpp runs.
// Which one a reader believes:
enum class GgufRopeSource {
  Agree,      // both, and they must give the same rotation (else ConfigError naming both)
  Ropescale,  // the ropescale record, whatever the llama.cpp keys say
  LlamaCpp,   // the llama.cpp keys, as llama.cpp itself would
};
std::string_view to_string(GgufRopeSource s);
std::optional<GgufRopeSource> parse_gguf_rope_source(std::string_view s);

enum class SourceFormat { HfConfig, Gguf, Llama2c };
std::string_view to_string(SourceFormat f);

struct ModelConfig {
  std::string path;        // file the facts came from (for messages)
  SourceFormat format = SourceFormat::HfConfig;
  std::string architecture;  // HF model_type / GGUF general.architecture / "llama"
  std::string name;          // general.name / _name_or_path when present

  int64_t hidden_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t num_hidden_layers = 0;
  int64_t vocab_size = 0;
  int64_t intermediate_size = 0;     // feed-forward width (0: not given)
  std::optional<double> rms_norm_eps;
  int64_t head_dim = 0;              // channels per head (resolved)
  int64_t rotary_head_dim = 0;       // channels the rotary part sees (DeepSeek: qk_rope_head_dim)
  double partial_rotary_factor = 1.0;
  int64_t max_position_embeddings = 0;
  std::optional<int64_t> original_max_position_embeddings;  // top-level (Phi-3 style)
  std::optional<int64_t> sliding_window;                    // active sliding window, tokens
  bool alibi = false;
  double alibi_max_bias = 8.0;
  bool uses_mla = false;  // DeepSeek multi-head latent attention (KV cache differs)
  PairLayout layout = PairLayout::HalfSplit;
  Convention convention = Convention::HF;

  // Standardized rope parameters (rope_type, rope_theta, type-specific keys).
  nlohmann::json rope_parameters = nlohmann::json::object();
  // The rope dict exactly as the file wrote it, before standardization (for
  // unknown-key and type-vs-rope_type checks). Keyed by layer type when the
  // config's rope_parameters are.
  nlohmann::json rope_as_written = nlohmann::json::object();
  // Where the dict came from, for messages: "rope_scaling", "rope_parameters",
  // "rope_parameters.full_attention", "--rope-scaling", "gguf:llama.rope.*".
  std::string rope_source = "rope_parameters";
  // Per-layer-type dicts (Gemma-style layer_types); empty if uniform.
  std::map<std::string, nlohmann::json> rope_parameters_by_layer_type;
  // Per-pair divisors stored as a GGUF tensor (rope_freqs.weight), llama3 in ggml.
  std::vector<double> freq_divisors;
  // Free-form facts for `inspect` (e.g. "rope_freqs tensor present").
  std::vector<std::string> notes;

  // The length the model was trained at before any extension: the original
  // context of the active scaling, else max_position_embeddings.
  int64_t trained_context() const;
  int rotary_dim() const;
};

// Load any supported file: a directory holding config.json, a config.json, a
// GGUF file, or a llama2.c checkpoint (legacy or "ak42" versioned header).
// Throws ConfigError.
// `gguf_rope`: which of a ropescale GGUF's two rope records to believe.
ModelConfig load_model_config(const std::string& path, GgufRopeSource gguf_rope = GgufRopeSource::Agree);

// Replace the model's scaling with a user override, given as the JSON a user
// passes to vLLM's --rope-scaling (e.g. {"rope_type":"yarn","factor":4,...}).
// The override replaces rope_scaling wholesale; rope_theta and
// partial_rotary_factor are kept unless the override sets them. Throws ConfigError.
void apply_rope_override(ModelConfig& cfg, const std::string& override_json);
// The override text as a JSON object; throws ConfigError (Unreadable, naming --rope-scaling).
nlohmann::json parse_rope_override(const std::string& override_json);
// A rope setting kept in a file: a JSON object that is the dict itself, or a
// document holding it as "rope_scaling" or "rope_parameters" (calibrate --out, an
// HF config.json). Throws ConfigError naming the file.
nlohmann::json read_rope_dict_file(const std::string& path);
// The same for a dict already parsed; `source` names it in messages
// ("--rope-scaling", "rope_scaling" for a recommended setting).
void apply_rope_setting(ModelConfig& cfg, nlohmann::json rope_dict, const std::string& source);

// Build the RopeSpec for the model (or one layer type). Throws ConfigError
// (Kind::Invalid) naming the key and value when a value is unusable.
RopeSpec rope_spec_for(const ModelConfig& cfg, const std::string& layer_type = "");

}  // namespace ropescale
