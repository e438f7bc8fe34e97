// Hugging Face semantics for a rope-parameter dict: standardization
// (rope-reference.md §1.1) and conversion into a RopeSpec.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ropescale/config/model_config.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

// `raw` is a rope_scaling / rope_parameters dict (or null). Returns the
// standardized dict: rope_type from rope_type|type|"default", rope_theta and
// partial_rotary_factor filled from the model, and original_max_position_embeddings
// overwritten by a top-level value (Phi-3) or defaulted to max_position_embeddings
// for llama3 / yarn / longrope / dynamic_yarn.
nlohmann::json standardize_rope_parameters(const nlohmann::json& raw, const ModelConfig& cfg);

// Build a spec from a standardized dict. `source_key` prefixes key names in
// errors (e.g. "rope_scaling"). Throws ConfigError(Kind::Invalid).
RopeSpec rope_spec_from_parameters(const nlohmann::json& params, const ModelConfig& cfg,
                                   const std::string& source_key);

// The keys HF's validator requires / accepts for a rope_type (§1.4), as
// ropescale reads them. `known` is false for a type HF has no entry for.
struct RopeKeySchema {
  bool known = false;
  std::vector<std::string> required;
  std::vector<std::string> optional;
};
RopeKeySchema rope_key_schema(const std::string& rope_type);

// The registry row of a standardized dict's rope_type (absent: plain RoPE);
// nullptr when rope_type is not a string or names no type.
const RopeTypeInfo* rope_row_of(const nlohmann::json& params);

// The dict a shorthand such as "yarn:4" or a request policy names, built from
// the type's registry row: {"rope_type": name, "factor": factor (when given,
// else the row's default for a required factor)}, plus
// original_max_position_embeddings = `trained_context` for the types that need
// the original length, and every other required key that has a default
// (llama3's low/high_freq_factor 1 and 4).
nlohmann::json rope_dict_for(const RopeTypeInfo& info, std::optional<double> factor, int64_t trained_context);

// Optional number at `key`: nullopt if absent or null; throws ConfigError
// naming `source_key.key` if present with a non-numeric type.
std::optional<double> number_at(const nlohmann::json& d, const std::string& key, const std::string& file,
                                const std::string& source_key);

}  // namespace ropescale
