// Writing a Llama model as GGUF the way llama.cpp reads it: tensor names
// (token_embd, blk.N.attn_q, …, output_norm, output), llama.* metadata, the
// SentencePiece-style vocabulary (spaces as U+2581), and the rope setting both
// as llama.cpp keys/tensors and verbatim as ropescale.rope_parameters.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ropescale/config/gguf.h"
#include "ropescale/model/llama_model.h"
#include "ropescale/model/tokenizer.h"

namespace ropescale {

enum class WeightType { F32, F16, BF16, Q8_0 };
std::optional<WeightType> parse_weight_type(std::string_view s);

// `rope` is an HF-style rope dict (rope_type, factor, …) or null for the model's
// own. Norms are always F32 (as llama.cpp's converter writes them). Q/K rows
// are written in Meta order (ggml NORMAL rope for the llama architecture):
// half-split models are un-permuted. Throws ConfigError for a setting GGUF
// cannot express for llama.cpp (it is still kept in ropescale.rope_parameters).
// `training` (optional) is stored verbatim as ropescale.training: how the
// weights were made (data recipe, steps, context, the scaling trained with).
std::vector<uint8_t> serialize_gguf_model(const LlamaModel& m, const Llama2cTokenizer& tok, WeightType wt,
                                          const nlohmann::json& rope = nullptr, const nlohmann::json& training = nullptr);

// The training record (ropescale.training) of a file ropescale wrote; null
// when the file is not a GGUF or has none (convert carries it over).
nlohmann::json load_gguf_training_record(const std::string& path);

// The vocabulary of a GGUF (tokenizer.ggml.tokens / scores), spaces restored.
Llama2cTokenizer gguf_tokenizer(const GgufFile& f, const std::string& path);
Llama2cTokenizer load_gguf_tokenizer(const std::string& path);

}  // namespace ropescale
