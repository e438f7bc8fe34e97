// RopeSetting: one rope setting resolved once — "model + override text" turned
// into the label the user gave, the HF-standardized dict, the model's position
// facts with it applied (for exports and checks) and the validated RopeSpec.
// Evaluation methods, results, sessions, training and reports carry this
// value; no layer parses the override again.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ropescale/config/model_config.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

struct RopeSetting {
  std::string label;                   // as the user named it: "yarn:4", "model", a JSON object
  nlohmann::json override_dict;        // the dict given; null = the model file's own setting
  ModelConfig position;                // the model's position facts with the setting applied
  RopeSpec spec;                       // resolved and validated

  const RopeTypeInfo& info() const { return rope_type_info(spec.type); }
  // The standardized dict (rope_type, rope_theta, the type's keys).
  const nlohmann::json& params() const { return position.rope_parameters; }
  bool operator==(const RopeSetting& o) const { return label == o.label && spec == o.spec; }
};

// The one way from "model + override" to a setting. `override_dict` null keeps
// the model's own. Throws ConfigError naming the key and value at fault.
RopeSetting resolve_rope_setting(ModelConfig position, const nlohmann::json& override_dict, std::string label);
// The same from override text as users type it (--rope-scaling JSON; "" = the model's own).
RopeSetting resolve_rope_setting(ModelConfig position, const std::string& override_json, std::string label);

}  // namespace ropescale
