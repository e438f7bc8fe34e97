// `export`: one rope setting written for Hugging Face (legacy rope_scaling and
// v5 rope_parameters), vLLM and llama.cpp — and a plain statement of what a
// target cannot express (dynamic NTK in llama.cpp, truncate=false in ggml, …).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropescale/config/model_config.h"

namespace ropescale {

enum class ExportTarget { HF, HFv5, VLLM, LlamaCpp };
std::string_view to_string(ExportTarget t);
std::optional<ExportTarget> parse_export_target(std::string_view s);

struct ExportResult {
  ExportTarget target = ExportTarget::HF;
  bool exact = true;               // the target computes the same frequencies and attention factor
  std::string text;                // JSON snippet or command-line arguments, ready to paste
  nlohmann::json data;             // the same, structured (JSON object or argv array)
  std::vector<std::string> notes;  // what differs, what cannot be expressed, version caveats
};

// `target_context`: the context length to serve (max_position_embeddings /
// --max-model-len / -c). Defaults to the scaled reach (factor × original length)
// or max_position_embeddings. Throws ConfigError if the setting is invalid.
ExportResult export_setting(const ModelConfig& cfg, ExportTarget target,
                            std::optional<int64_t> target_context = std::nullopt);

// The context a setting reaches: factor × original length for scaled types,
// else max_position_embeddings. Saturates at kMaxContext.
constexpr int64_t kMaxContext = int64_t{1} << 50;
int64_t scaled_reach(const ModelConfig& cfg);

}  // namespace ropescale
