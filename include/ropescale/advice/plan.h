// `plan`: which method fits a target context, by the decision rules of the
// issue tracker (within native length → none; ≤4× without fine-tuning → YaRN
// (or NTK-aware); ≥8× → YaRN plus fine-tuning; mixed short and long traffic →
// dynamic; ALiBi / sliding window → not RoPE scaling), with exact settings,
// the three exports and the KV-cache bytes at the target length.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropescale/advice/check.h"
#include "ropescale/advice/export.h"
#include "ropescale/config/model_config.h"

namespace ropescale {

struct PlanOptions {
  int64_t target_context = 0;
  bool will_finetune = false;   // the user can fine-tune at the target length
  bool mixed_traffic = false;   // short and long prompts both matter
};

struct KvCacheSize {
  std::string dtype;            // f32, f16/bf16, fp8, q8_0, q4_0
  double bytes_per_element = 0;
  double bytes = 0;             // per sequence at the target length
  bool runtime = false;         // ropescale's runtime has this cache (--kv-cache): bytes are what it allocates
};

struct Plan {
  int64_t trained_context = 0;  // original (pre-extension) length
  int64_t native_context = 0;   // what the model reaches as configured
  int64_t target_context = 0;
  double ratio = 1.0;           // target / trained
  std::string method;           // e.g. "none", "yarn", "dynamic", "not-rope-scaling"
  bool needs_finetune = false;
  std::string reason;
  nlohmann::json rope_scaling;  // the recommended dict (null = no change)
  std::vector<ExportResult> exports;
  std::vector<KvCacheSize> kv_cache;
  std::vector<std::string> notes;
  std::vector<Finding> findings;  // check() of the planned configuration
};

// Throws ConfigError for a target < 1.
Plan make_plan(const ModelConfig& cfg, const PlanOptions& options);

// 2 × layers × kv_heads × tokens × bytes of a row: kv_cache_bytes (kernels/kv_storage.h), the function the
// runtime allocates by, for the types it has (q8_0 / q4_0 only when head_dim is a multiple of 32); fp8 as
// vLLM stores it, one byte an element.
std::vector<KvCacheSize> kv_cache_sizes(const ModelConfig& cfg, int64_t tokens);

}  // namespace ropescale
