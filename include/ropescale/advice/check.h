// `check`: every rule of the Hugging Face rope validators (required keys,
// unknown keys, types, ranges; rope-reference.md §1.4) plus the pitfalls users
// actually hit (§4). Findings never throw: a config that cannot produce a spec
// yields an error finding naming the key and value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ropescale/config/model_config.h"

namespace ropescale {

enum class Severity { Error, Warning };
std::string_view to_string(Severity s);

struct Finding {
  Severity severity = Severity::Warning;
  std::string rule;   // stable id, e.g. "yarn-factor-mismatch"
  std::string key;    // full key path, e.g. "rope_scaling.factor"
  std::string value;  // the value as written (JSON)
  std::string why;    // why it matters
  std::string fix;    // what to do
};

struct CheckOptions {
  std::optional<int64_t> target_context;  // the context the user intends to run at
};

std::vector<Finding> check_config(const ModelConfig& cfg, const CheckOptions& options = {});

bool has_errors(const std::vector<Finding>& findings);

}  // namespace ropescale
