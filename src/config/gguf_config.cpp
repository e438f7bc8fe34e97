// GGUF metadata → ModelConfig. Keys per rope-reference.md §2.4; the rope
// setting is expressed as the equivalent HF rope_parameters dict.
#include <cmath>
#include <set>

#include "ropescale/config/error.h"
#include "ropescale/config/gguf.h"
#include "ropescale/config/model_shape.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/rope/frequencies.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

using nlohmann::json;

namespace {

// llama.cpp architectures whose rope type is NEOX (half-split pairs); the
// others (llama, mistral, deepseek2, …) use NORMAL (interleaved).
bool ggml_arch_is_neox(const std::string& a) {
  static const std::set<std::string> kNeox = {
      "falcon", "grok", "dbrx", "bert", "nomic-bert", "stablelm", "bitnet", "qwen", "qwen2", "qwen2moe",
      "qwen3", "qwen3moe", "olmo2", "olmoe", "phi2", "phi3", "phimoe", "gemma", "gemma2", "gemma3",
      "starcoder2", "openelm", "gptneox", "codeshell", "orion", "nemotron", "exaone", "minicpm3", "gpt-oss"};
  return kNeox.count(a) > 0;
}

bool ggml_arch_is_alibi(const std::string& a) {
  static const std::set<std::string> kAlibi = {"bloom", "mpt", "jais", "refact"};
  return kAlibi.count(a) > 0;
}

struct Meta {
  const GgufFile& f;
  const std::string& path;
  std::string prefix;

  const GgufKeyValue* kv(const std::string& k) const { return f.find(prefix + k); }
  std::optional<double> number(const std::string& k) const {
    const auto* v = kv(k);
    if (!v) return std::nullopt;
    const json* x = &v->value;
    if (x->is_array()) {  // per-layer arrays (head counts): take the largest
      double best = 0;
      bool any = false;
      for (const auto& e : *x) {
        if (!e.is_number()) continue;
        best = any ? std::max(best, e.get<double>()) : e.get<double>();
        any = true;
      }
      if (!any) throw_invalid(path, prefix + k, "[]", "expected a number or a list of numbers");
      return best;
    }
    if (!x->is_number()) throw_invalid(path, prefix + k, safe_dump(*x).substr(0, 60), "expected a number");
    return x->get<double>();
  }
  std::optional<int64_t> count(const std::string& k) const {
    auto v = number(k);
    if (!v) return std::nullopt;
    if (!(*v >= 0) || *v != std::floor(*v) || *v > 1e15)
      throw_invalid(path, prefix + k, json(*v).dump(), "expected a non-negative integer");
    return static_cast<int64_t>(*v);
  }
  std::optional<std::string> string(const std::string& k) const {
    const auto* v = kv(k);
    if (!v) return std::nullopt;
    if (!v->value.is_string()) throw_invalid(path, prefix + k, safe_dump(v->value).substr(0, 60), "expected a string");
    return v->value.get<std::string>();
  }
};

std::vector<double> f32_tensor_as_double(std::span<const uint8_t> bytes, const GgufFile& f, const GgufTensorInfo& t,
                                         const std::string& path) {
  auto v = read_f32_tensor(bytes, f, t, path);
  return {v.begin(), v.end()};
}

}  // namespace

ModelConfig model_config_from_gguf_keys(std::span<const uint8_t> bytes, const GgufFile& f, const std::string& path) {
  Meta general{f, path, "general."};
  auto arch = general.string("architecture");
  if (!arch || arch->empty()) throw_invalid(path, "general.architecture", "(missing)", "every GGUF model names its architecture");
  Meta m{f, path, *arch + "."};

  ModelConfig c;
  c.path = path;
  c.format = SourceFormat::Gguf;
  c.convention = Convention::GGML;
  c.architecture = *arch;
  c.name = general.string("name").value_or("");
  c.max_position_embeddings = m.count("context_length").value_or(0);
  c.hidden_size = m.count("embedding_length").value_or(0);
  c.num_hidden_layers = m.count("block_count").value_or(0);
  c.num_attention_heads = m.count("attention.head_count").value_or(0);
  c.num_key_value_heads = m.count("attention.head_count_kv").value_or(c.num_attention_heads);
  c.vocab_size = m.count("vocab_size").value_or(0);
  c.intermediate_size = m.count("feed_forward_length").value_or(0);
  c.rms_norm_eps = m.number("attention.layer_norm_rms_epsilon");
  if (c.vocab_size == 0)
    if (const auto* toks = f.find("tokenizer.ggml.tokens"); toks && toks->value.is_array())
      c.vocab_size = static_cast<int64_t>(toks->value.size());
  c.head_dim = m.count("attention.key_length")
                   .value_or(c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
  c.rotary_head_dim = c.head_dim;
  if (auto n_rot = m.count("rope.dimension_count"); n_rot && c.head_dim > 0 && *n_rot != c.head_dim)
    c.partial_rotary_factor = static_cast<double>(*n_rot) / c.head_dim;
  if (auto sw = m.count("attention.sliding_window"); sw && *sw > 0) c.sliding_window = *sw;
  c.alibi = ggml_arch_is_alibi(*arch) || m.kv("attention.max_alibi_bias") != nullptr;
  if (auto mb = m.number("attention.max_alibi_bias"); mb && *mb > 0) c.alibi_max_bias = *mb;
  c.layout = ggml_arch_is_neox(*arch) ? PairLayout::HalfSplit : PairLayout::Interleaved;

  // ---- rope setting, written as the equivalent HF dict --------------------
  json p = json::object();
  c.rope_source = "gguf:" + *arch + ".rope.scaling";
  p["rope_theta"] = m.number("rope.freq_base").value_or(10000.0);
  auto type = m.string("rope.scaling.type");
  // rope.scaling.factor, else the legacy rope.scale_linear; 0 means unset.
  double factor_value = m.number("rope.scaling.factor").value_or(0.0);
  if (factor_value == 0) factor_value = m.number("rope.scale_linear").value_or(0.0);
  const bool has_factor = factor_value != 0;
  auto orig = m.count("rope.scaling.original_context_length");
  if (orig && *orig > 0) c.original_max_position_embeddings = *orig;
  const auto* t_long = f.find_tensor("rope_factors_long.weight");
  const auto* t_short = f.find_tensor("rope_factors_short.weight");
  const auto* t_freqs = f.find_tensor("rope_freqs.weight");

  // llama.cpp: an absent scaling type means "linear" (only matters if a factor is set).
  // Its rope.scaling.type names are the registry rows' ggml_name.
  const std::string ty(type ? std::string_view(*type) : rope_type_info(has_factor ? RopeType::Linear : RopeType::Default).ggml_name);
  const RopeTypeInfo* by_ggml = nullptr;
  for (const RopeTypeInfo& r : rope_types())
    if (!ty.empty() && r.ggml_name == ty) by_ggml = &r;
  if (t_long || t_short) {
    if (!t_long || !t_short) throw_invalid(path, "rope_factors_long/short.weight", "one present", "both tensors are needed");
    p["rope_type"] = std::string(to_string(RopeType::LongRope));
    p["long_factor"] = f32_tensor_as_double(bytes, f, *t_long, path);
    p["short_factor"] = f32_tensor_as_double(bytes, f, *t_short, path);
    if (auto af = m.number("rope.scaling.attn_factor")) p["attention_factor"] = *af;
    c.notes.push_back("LongRoPE factors from tensors rope_factors_long/short.weight");
  } else if (ty.empty() || !by_ggml || by_ggml->type == RopeType::Default) {
    if (!ty.empty() && !by_ggml) {
      std::string known;
      for (const RopeTypeInfo& r : rope_types())
        if (!r.ggml_name.empty()) known += std::string(r.ggml_name) + ", ";
      throw_invalid(path, *arch + ".rope.scaling.type", "\"" + ty + "\"", "unknown scaling type (" + known + "longrope)");
    }
    p["rope_type"] = std::string(to_string(RopeType::Default));
  } else if (by_ggml->type == RopeType::Linear) {
    const bool scaled = has_factor && factor_value != 1.0;  // factor 1 is plain RoPE
    p["rope_type"] = std::string(to_string(scaled ? RopeType::Linear : RopeType::Default));
    if (scaled) p["factor"] = factor_value;
  } else {
    p["rope_type"] = std::string(by_ggml->name);
    p["factor"] = has_factor ? factor_value : 1.0;
    if (auto v = m.number("rope.scaling.yarn_beta_fast")) p["beta_fast"] = *v;
    if (auto v = m.number("rope.scaling.yarn_beta_slow")) p["beta_slow"] = *v;
    if (auto v = m.number("rope.scaling.yarn_attn_factor")) p["attention_factor"] = *v;
    // llama.cpp multiplies its YaRN magnitude (0.1·ln(factor) + 1) by rope.scaling.attn_factor: in
    // the ggml convention that is what attention_factor means.
    if (auto v = m.number("rope.scaling.attn_factor"); v && by_ggml->type == RopeType::Yarn) p["attention_factor"] = *v;
    if (auto v = m.number("rope.scaling.yarn_log_multiplier"); v && *v != 0) {
      p["mscale"] = *v / 0.1;  // DeepSeek: yarn_log_multiplier = 0.1·mscale_all_dim
      p["mscale_all_dim"] = *v / 0.1;
    }
  }
  const auto attn_factor = m.number("rope.scaling.attn_factor");
  if (t_freqs && !t_long && !type && attn_factor) {
    // Per-pair divisors with a magnitude: LongRoPE as ropescale writes it for the llama architecture,
    // which llama.cpp runs with these factors at every length.
    const auto div = f32_tensor_as_double(bytes, f, *t_freqs, path);
    p["rope_type"] = std::string(to_string(RopeType::LongRope));
    p["long_factor"] = div;
    p["short_factor"] = div;
    p["attention_factor"] = *attn_factor;
    c.notes.push_back("LongRoPE long factors from tensor rope_freqs.weight (llama.cpp uses them at every length)");
  } else if (t_freqs) {
    const auto div = f32_tensor_as_double(bytes, f, *t_freqs, path);
    c.freq_divisors = div;
    c.notes.push_back("per-pair divisors from tensor rope_freqs.weight (llama3-style, " +
                      std::to_string(div.size()) + " entries)");
  }
  if (m.kv("rope.scaling.finetuned")) p["finetuned"] = m.kv("rope.scaling.finetuned")->value;
  c.rope_as_written = p;
  c.rope_parameters = standardize_rope_parameters(p, c);
  // freq_divisors must match the rotary pair count; checked where the spec is built.
  return c;
}

namespace {

// The same facts with the rope setting ropescale recorded verbatim (any
// method, also those llama.cpp cannot express) in place of the llama.cpp keys.
ModelConfig with_ropescale_record(ModelConfig c, const GgufFile& f, const GgufKeyValue& own, const std::string& path) {
  if (!own.value.is_string()) throw_invalid(path, "ropescale.rope_parameters", safe_dump(own.value).substr(0, 60), "must be a string");
  json p;
  try {
    p = json::parse(own.value.get<std::string>());
  } catch (const json::exception&) {
    throw_invalid(path, "ropescale.rope_parameters", safe_dump(own.value).substr(0, 60), "is not valid JSON");
  }
  if (!p.is_object()) throw_invalid(path, "ropescale.rope_parameters", safe_dump(p).substr(0, 60), "must be a JSON object");
  c.freq_divisors.clear();
  c.rope_source = "gguf:ropescale.rope_parameters";
  c.convention = Convention::HF;  // ropescale wrote the HF-semantics setting it trained or converted with
  if (const auto* tc = f.find("ropescale.trained_context"); tc && tc->value.is_number_unsigned())
    c.original_max_position_embeddings = tc->value.get<int64_t>();
  c.rope_as_written = p;
  c.rope_parameters = standardize_rope_parameters(p, c);
  return c;
}

// "" when llama.cpp, reading `keys`, rotates as the ropescale record says it
// should (plain RoPE for a type llama.cpp cannot express, ggml's own YaRN
// rounding); else the first difference, in words.
std::string rope_disagreement(const ModelConfig& record, const ModelConfig& keys) {
  RopeSpec want = rope_spec_for(record);
  const RopeSpec seen = rope_spec_for(keys);
  if (rope_type_info(want.type).gguf == GgufEncoding::NotExpressible) {
    RopeSpec plain;
    plain.theta = want.theta, plain.head_dim = want.head_dim, plain.rotary_dim = want.rotary_dim;
    want = plain;
  }
  const RopeSpec want_own = want;  // its attention factor in its own (HF) meaning
  want.convention = Convention::GGML;
  if (seen.rotary_dim != want.rotary_dim)
    return "rotary dimension " + std::to_string(seen.rotary_dim) + " vs " + std::to_string(want.rotary_dim);
  const int64_t L = std::max<int64_t>(1, record.trained_context());
  // LongRoPE: llama.cpp's llama architecture keeps the long factors below the trained length too.
  const bool long_only = rope_type_info(want.type).gguf == GgufEncoding::LongRopeFreqs;
  for (int64_t len : {L, 8 * L}) {
    if (long_only && len <= L) continue;
    const auto fa = compute_frequencies(seen, len), fb = compute_frequencies(want, len);
    const double attention = compute_frequencies(want_own, len).attention_factor;
    const auto &a = fa.inv_freq, &b = fb.inv_freq;
    for (size_t j = 0; j < a.size(); ++j)
      if (!(std::abs(a[j] - b[j]) <= 1e-5 * std::abs(b[j])))
        return "at " + std::to_string(len) + " tokens pair " + std::to_string(j) + " turns at inv_freq " + json(a[j]).dump() +
               " by the llama.cpp keys but " + json(b[j]).dump() + " by the record";
    if (!(std::abs(fa.attention_factor - attention) <= 1e-5 * attention))
      return "at " + std::to_string(len) + " tokens the attention factor is " + json(fa.attention_factor).dump() +
             " by the llama.cpp keys but " + json(attention).dump() + " by the record";
  }
  return {};
}

}  // namespace

std::string_view to_string(GgufRopeSource s) {
  switch (s) {
    case GgufRopeSource::Agree: return "agree";
    case GgufRopeSource::Ropescale: return "ropescale";
    case GgufRopeSource::LlamaCpp: return "llama.cpp";
  }
  return "?";
}

std::optional<GgufRopeSource> parse_gguf_rope_source(std::string_view s) {
  for (auto v : {GgufRopeSource::Agree, GgufRopeSource::Ropescale, GgufRopeSource::LlamaCpp})
    if (to_string(v) == s) return v;
  return std::nullopt;
}

ModelConfig model_config_from_gguf(std::span<const uint8_t> bytes, const std::string& path, GgufRopeSource source) {
  const GgufFile f = parse_gguf(bytes, path);
  ModelConfig keys = model_config_from_gguf_keys(bytes, f, path);
  const GgufKeyValue* own = f.find("ropescale.rope_parameters");
  if (!own) return keys;
  if (source == GgufRopeSource::LlamaCpp) {
    keys.notes.push_back("rope setting from the llama.cpp keys (--gguf-rope llama.cpp); ropescale.rope_parameters ignored");
    return keys;
  }
  ModelConfig record = with_ropescale_record(keys, f, *own, path);
  if (source == GgufRopeSource::Agree && !keys.alibi) {
    require_valid_model_shape(keys);  // a broken shape is the error to report, not the comparison it spoils
    std::string why;
    try {
      why = rope_disagreement(record, keys);
    } catch (const ConfigError& e) {
      why = std::string("one side cannot be read: ") + e.what();
    }
    if (!why.empty())
      throw_invalid(path, "ropescale.rope_parameters vs " + keys.architecture + ".rope.*",
                    safe_dump(record.rope_parameters).substr(0, 200) + " vs " + safe_dump(keys.rope_parameters).substr(0, 200),
                    "the two rope records of this file disagree (" + why +
                        "), so llama.cpp would run it one way and ropescale another; pass --gguf-rope ropescale or "
                        "--gguf-rope llama.cpp to choose one");
  }
  return record;
}

}  // namespace ropescale
