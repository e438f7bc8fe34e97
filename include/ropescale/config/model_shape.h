// The shape of a model — widths, head counts, layers, vocabulary, context,
// RMS epsilon — and the rules it must obey before anything is computed from
// it: zero, negative, NaN and absurd values, and KV heads that do not divide
// the heads, are named by the file's own key ("llama.attention.head_count_kv",
// "num_key_value_heads", "n_kv_heads").
#pragma once

#include <string>
#include <vector>

#include "ropescale/config/model_config.h"

namespace ropescale {

struct ShapeProblem {
  std::string key;     // as the file names it
  std::string value;   // as found
  std::string reason;  // what it must be
};

// The dimensions every model file must state (a loaded model needs them all):
// required = true reports a missing one. For a bare config.json that `check`
// reads, required = false judges only the values present.
std::vector<ShapeProblem> model_shape_problems(const ModelConfig& cfg, bool required);

// Throws ConfigError (Invalid) naming the file, key and value of the first problem.
void require_valid_model_shape(const ModelConfig& cfg);

// The key a format uses for a shape field, for messages from other checks
// (tensor counts against the layer count, shapes against the widths).
enum class ShapeField { Hidden, Intermediate, Layers, Heads, KvHeads, HeadDim, Vocab, Context, NormEps };
std::string shape_key(const ModelConfig& cfg, ShapeField field);

}  // namespace ropescale
