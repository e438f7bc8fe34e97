// The rope settings an evaluation compares, as users name them on a command
// line: a shorthand ("none", "linear:4", "ntk:4", "dynamic", "yarn:4",
// "dynamic_yarn", "llama3:8", "longrope:FILE") or a JSON object in the form
// vLLM's --rope-scaling takes ({"rope_type":"yarn","factor":4,…}).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ropescale/config/rope_setting.h"
#include "ropescale/model/llama_model.h"

namespace ropescale {

struct EvalMethod {
  std::string label;         // as written on the command line (JSON: compacted)
  std::string rope_scaling;  // the override JSON; "" = the model file's own setting
};

// One method. Shorthand factors get original_max_position_embeddings =
// `trained_context` (the model's trained length). "model" keeps the file's own
// setting; "dynamic" without a factor is dynamic NTK with factor 1 (the base
// grows as (len / L)^(d/(d-2)) past L); "dynamic_yarn" needs no factor.
// Throws ConfigError naming the item when it cannot be understood.
EvalMethod parse_eval_method(const std::string& text, int64_t trained_context);

// "model, none, linear:F, ntk:F, dynamic[:F], …": every shorthand, from the registry.
std::string eval_method_shorthands();

// Several, from --methods items; an item that is not JSON may hold several
// shorthands separated by commas ("none,linear:2,yarn:4"). Labels must differ.
std::vector<EvalMethod> parse_eval_methods(const std::vector<std::string>& items, int64_t trained_context);

// Each method resolved once against the model: its label, dict, the model's
// position facts with it applied, and its spec (the value evaluations, results
// and reports carry). Throws ConfigError naming the method's key and value.
std::vector<RopeSetting> resolve_eval_methods(const LlamaModel& model, const std::vector<EvalMethod>& methods);

// The default comparison for contexts up to `max_ctx`: none; linear, ntk and
// yarn at every power-of-two factor up to max_ctx / trained; dynamic; dynamic_yarn.
std::vector<EvalMethod> default_eval_methods(int64_t trained_context, int64_t max_ctx);

}  // namespace ropescale
