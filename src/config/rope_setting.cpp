#include "ropescale/config/rope_setting.h"

#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"

namespace ropescale {

RopeSetting resolve_rope_setting(ModelConfig position, const nlohmann::json& override_dict, std::string label) {
  if (!override_dict.is_null()) {
    if (!override_dict.is_object()) throw_unreadable("--rope-scaling", "expected a JSON object, got " + safe_dump(override_dict));
    apply_rope_setting(position, override_dict, "--rope-scaling");
  }
  RopeSpec spec = rope_spec_for(position);
  return {std::move(label), override_dict, std::move(position), std::move(spec)};
}

RopeSetting resolve_rope_setting(ModelConfig position, const std::string& override_json, std::string label) {
  const nlohmann::json dict = override_json.empty() ? nlohmann::json() : parse_rope_override(override_json);
  return resolve_rope_setting(std::move(position), dict, std::move(label));
}

}  // namespace ropescale
