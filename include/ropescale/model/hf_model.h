// Hugging Face layout: config.json + model.safetensors (F32/F16/BF16), Llama
// tensor names, Q/K rows permuted for rotate_half (half-split pairs).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ropescale/model/gguf_model.h"
#include "ropescale/model/llama_model.h"
#include "ropescale/model/tokenizer.h"

namespace ropescale {

// `path`: a directory holding config.json + model.safetensors (or sharded
// model-*.safetensors with model.safetensors.index.json), or the config.json.
LlamaModel load_hf_model(const std::string& path);

// Writes config.json, model.safetensors and tokenizer.bin (llama2.c format)
// into `dir` (created); for a byte-level vocabulary also tokenizer.json and
// tokenizer_config.json, which transformers loads to the same ids. `rope`: HF-style dict or null for the model's own.
// Q8_0 is not a safetensors type: F32, F16, BF16 only. Throws ConfigError.
void write_hf_model(const LlamaModel& m, const Llama2cTokenizer& tok, WeightType wt, const std::string& dir,
                    const nlohmann::json& rope = nullptr);

}  // namespace ropescale
