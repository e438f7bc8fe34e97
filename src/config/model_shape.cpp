#include "ropescale/config/model_shape.h"

#include <cmath>
#include <optional>

#include "ropescale/config/error.h"

namespace ropescale {

std::string shape_key(const ModelConfig& c, ShapeField f) {
  static constexpr const char* kHf[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                                        "num_attention_heads", "num_key_value_heads", "head_dim",
                                        "vocab_size", "max_position_embeddings", "rms_norm_eps"};
  static constexpr const char* kGguf[] = {"embedding_length", "feed_forward_length", "block_count",
                                          "attention.head_count", "attention.head_count_kv", "attention.key_length",
                                          "vocab_size", "context_length", "attention.layer_norm_rms_epsilon"};
  static constexpr const char* kLlama2c[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads",
                                             "dim / n_heads", "vocab_size", "seq_len", "(none)"};
  const int i = static_cast<int>(f);
  switch (c.format) {
    case SourceFormat::Gguf: return c.architecture + "." + kGguf[i];
    case SourceFormat::Llama2c: return std::string("llama2.c header ") + kLlama2c[i];
    case SourceFormat::HfConfig: break;
  }
  return kHf[i];
}

std::vector<ShapeProblem> model_shape_problems(const ModelConfig& c, bool required) {
  std::vector<ShapeProblem> out;
  auto bad = [&](ShapeField f, const std::string& value, const std::string& reason) {
    out.push_back({shape_key(c, f), value, reason});
  };
  // A count: present (> 0) values must lie in [1, limit]; a required one must be present.
  auto count = [&](ShapeField f, int64_t v, int64_t limit, bool needed) {
    if (v == 0) {
      if (needed) bad(f, "(missing or 0)", "must be a positive integer");
    } else if (v < 0 || v > limit) {
      bad(f, std::to_string(v), "is absurd (must be between 1 and " + std::to_string(limit) + ")");
    }
  };
  count(ShapeField::Hidden, c.hidden_size, int64_t{1} << 20, required);
  count(ShapeField::Intermediate, c.intermediate_size, int64_t{1} << 22, false);
  count(ShapeField::Layers, c.num_hidden_layers, 4096, required);
  count(ShapeField::Heads, c.num_attention_heads, int64_t{1} << 14, required && !c.alibi);
  count(ShapeField::KvHeads, c.num_key_value_heads, int64_t{1} << 14, required && !c.alibi);
  count(ShapeField::HeadDim, c.head_dim, int64_t{1} << 14, required && !c.alibi);
  count(ShapeField::Vocab, c.vocab_size, int64_t{1} << 24, false);
  count(ShapeField::Context, c.max_position_embeddings, int64_t{1} << 30, required);
  if (c.num_attention_heads > 0 && c.num_key_value_heads > 0 &&
      (c.num_key_value_heads > c.num_attention_heads || c.num_attention_heads % c.num_key_value_heads != 0))
    bad(ShapeField::KvHeads, std::to_string(c.num_key_value_heads),
        "must divide " + shape_key(c, ShapeField::Heads) + " = " + std::to_string(c.num_attention_heads) +
            " (each KV head serves a whole group of query heads)");
  if (c.rms_norm_eps && !(std::isfinite(*c.rms_norm_eps) && *c.rms_norm_eps > 0 && *c.rms_norm_eps < 1)) {
    const double e = *c.rms_norm_eps;
    bad(ShapeField::NormEps, std::isnan(e) ? "nan" : std::to_string(e), "must be a finite number in (0, 1), e.g. 1e-5");
  }
  return out;
}

void require_valid_model_shape(const ModelConfig& c) {
  const auto problems = model_shape_problems(c, true);
  if (!problems.empty()) throw_invalid(c.path, problems[0].key, problems[0].value, problems[0].reason);
}

}  // namespace ropescale
