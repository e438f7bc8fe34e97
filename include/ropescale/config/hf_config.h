// Hugging Face config.json → ModelConfig (rope_scaling, rope_parameters incl.
// per-layer-type dicts, type vs rope_type, "su", top-level
// original_max_position_embeddings, head_dim, partial_rotary_factor,
// sliding_window, ALiBi models).
#pragma once

#include <string>

#include "ropescale/config/model_config.h"

namespace ropescale {

// Parses `text` (the content of `path`). Throws ConfigError: Unreadable for
// text that is not a JSON object, Invalid for keys of the wrong type.
ModelConfig parse_hf_config(const std::string& text, const std::string& path);

}  // namespace ropescale
