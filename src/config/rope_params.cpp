#include "ropescale/config/rope_params.h"

#include <cmath>

#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"

namespace ropescale {

using nlohmann::json;

namespace {

std::string key_path(const std::string& source_key, const std::string& key) {
  return source_key.empty() ? key : source_key + "." + key;
}

bool needs_original_length(const std::string& t) {
  return t == "llama3" || t == "yarn" || t == "longrope" || t == "dynamic_yarn";
}

int64_t positive_int_at(const json& d, const std::string& key, const ModelConfig& cfg,
                        const std::string& source_key) {
  auto v = number_at(d, key, cfg.path, source_key);
  if (!v) throw_invalid(cfg.path, key_path(source_key, key), "(missing)", "required for this rope_type");
  if (!(*v > 0) || *v != std::floor(*v) || *v > 1e15)
    throw_invalid(cfg.path, key_path(source_key, key), d.at(key).dump(), "must be a positive integer");
  return static_cast<int64_t>(*v);
}

double required_number(const json& d, const std::string& key, const ModelConfig& cfg,
                       const std::string& source_key) {
  auto v = number_at(d, key, cfg.path, source_key);
  if (!v) throw_invalid(cfg.path, key_path(source_key, key), "(missing)", "required for this rope_type");
  return *v;
}

std::vector<double> number_list_at(const json& d, const std::string& key, const ModelConfig& cfg,
                                   const std::string& source_key) {
  if (!d.contains(key) || d.at(key).is_null())
    throw_invalid(cfg.path, key_path(source_key, key), "(missing)", "required for this rope_type");
  const json& a = d.at(key);
  if (!a.is_array())
    throw_invalid(cfg.path, key_path(source_key, key), a.dump().substr(0, 80), "must be a list of numbers");
  std::vector<double> out;
  out.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_number() || a[i].is_boolean())
      throw_invalid(cfg.path, key_path(source_key, key) + "[" + std::to_string(i) + "]", a[i].dump(),
                    "must be a number");
    out.push_back(a[i].get<double>());
  }
  return out;
}

}  // namespace

std::optional<double> number_at(const json& d, const std::string& key, const std::string& file,
                                const std::string& source_key) {
  if (!d.is_object() || !d.contains(key) || d.at(key).is_null()) return std::nullopt;
  const json& v = d.at(key);
  if (!v.is_number() || v.is_boolean())
    throw_invalid(file, key_path(source_key, key), v.dump(), "must be a number");
  return v.get<double>();
}

json standardize_rope_parameters(const json& raw, const ModelConfig& cfg) {
  json p = raw.is_object() ? raw : json::object();
  if (!p.contains("rope_type") || p["rope_type"].is_null())
    p["rope_type"] = p.contains("type") && !p["type"].is_null() ? p["type"] : json("default");
  p.erase("type");
  if (p["rope_type"].is_string()) {
    // Legacy aliases (Phi-3 BC code maps "su" to longrope).
    if (p["rope_type"] == "su") p["rope_type"] = "longrope";
    if (p["rope_type"] == "none") p["rope_type"] = "default";
  }
  if (!p.contains("rope_theta") || p["rope_theta"].is_null()) p["rope_theta"] = 10000.0;
  if (!p.contains("partial_rotary_factor") && cfg.partial_rotary_factor != 1.0)
    p["partial_rotary_factor"] = cfg.partial_rotary_factor;
  const std::string t = p["rope_type"].is_string() ? p["rope_type"].get<std::string>() : "";
  if (needs_original_length(t)) {
    if (cfg.original_max_position_embeddings)
      p["original_max_position_embeddings"] = *cfg.original_max_position_embeddings;
    else if (!p.contains("original_max_position_embeddings") || p["original_max_position_embeddings"].is_null())
      p["original_max_position_embeddings"] = cfg.max_position_embeddings;
  }
  return p;
}

RopeKeySchema rope_key_schema(const std::string& t) {
  if (t == "default") return {true, {"rope_type", "rope_theta"}, {}};
  if (t == "linear" || t == "ntk") return {true, {"rope_type", "factor", "rope_theta"}, {}};
  if (t == "dynamic") return {true, {"rope_type", "factor", "rope_theta"}, {}};
  if (t == "yarn")
    return {true,
            {"rope_type", "factor", "rope_theta", "original_max_position_embeddings"},
            {"attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate", "finetuned"}};
  if (t == "dynamic_yarn")  // ropescale's own: the factor follows the current length
    return {true,
            {"rope_type", "rope_theta", "original_max_position_embeddings"},
            {"factor", "attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate"}};
  if (t == "longrope")
    return {true,
            {"rope_type", "short_factor", "long_factor", "rope_theta", "original_max_position_embeddings"},
            {"attention_factor", "factor"}};
  if (t == "llama3")
    return {true,
            {"rope_type", "factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor",
             "rope_theta"},
            {}};
  return {};
}

RopeSpec rope_spec_from_parameters(const json& p, const ModelConfig& cfg, const std::string& src) {
  RopeSpec s;
  if (!p.contains("rope_type") || !p["rope_type"].is_string())
    throw_invalid(cfg.path, key_path(src, "rope_type"), (p.contains("rope_type") ? safe_dump(p["rope_type"]) : std::string("(missing)")), "must be a string");
  const std::string type_name = p["rope_type"].get<std::string>();
  auto type = parse_rope_type(type_name);
  if (!type)
    throw_invalid(cfg.path, key_path(src, "rope_type"), "\"" + type_name + "\"",
                  "unknown rope_type (known: default, linear, ntk, dynamic, yarn, dynamic_yarn, longrope, llama3)");
  s.type = *type;
  s.layout = cfg.layout;
  s.convention = cfg.convention;
  s.theta = number_at(p, "rope_theta", cfg.path, src).value_or(10000.0);
  if (!(std::isfinite(s.theta) && s.theta > 0 && s.theta != 1.0))
    throw_invalid(cfg.path, key_path(src, "rope_theta"), p["rope_theta"].dump(), "must be a finite number > 0 and != 1");

  s.head_dim = static_cast<int>(cfg.rotary_head_dim);
  const double prf = number_at(p, "partial_rotary_factor", cfg.path, src).value_or(cfg.partial_rotary_factor);
  if (!(prf > 0 && prf <= 1.0))
    throw_invalid(cfg.path, key_path(src, "partial_rotary_factor"), json(prf).dump(), "must be in (0, 1]");
  s.rotary_dim = static_cast<int>(s.head_dim * prf);  // HF: int(head_dim * partial_rotary_factor)
  if (s.rotary_dim < 2 || s.rotary_dim % 2)
    throw_invalid(cfg.path, "head_dim × partial_rotary_factor", std::to_string(s.head_dim) + " × " + json(prf).dump(),
                  "gives rotary dimension " + std::to_string(s.rotary_dim) + "; it must be even and >= 2");
  s.max_position = cfg.max_position_embeddings;
  s.freq_divisors = cfg.freq_divisors;

  auto check_factor = [&](double f) {
    if (!(std::isfinite(f) && f > 0))
      throw_invalid(cfg.path, key_path(src, "factor"), json(f).dump(), "must be a finite number > 0");
    if (f > kMaxFactor)
      throw_invalid(cfg.path, key_path(src, "factor"), json(f).dump(), "is absurd (above 1e6)");
    return f;
  };

  switch (s.type) {
    case RopeType::Default:
      break;
    case RopeType::Linear:
    case RopeType::Ntk:
    case RopeType::Dynamic:
      s.factor = check_factor(required_number(p, "factor", cfg, src));
      if (s.type == RopeType::Dynamic && s.max_position <= 0)
        throw_invalid(cfg.path, "max_position_embeddings", std::to_string(s.max_position),
                      "dynamic NTK scales relative to max_position_embeddings; it must be > 0");
      break;
    case RopeType::Yarn:
    case RopeType::DynamicYarn: {
      s.original_max_position = positive_int_at(p, "original_max_position_embeddings", cfg, src);
      auto f = number_at(p, "factor", cfg.path, src);
      // HF v5: a missing factor is max_position_embeddings / original length.
      s.factor = check_factor(f ? *f : static_cast<double>(cfg.max_position_embeddings) / s.original_max_position);
      // HF reads `get("beta_fast") or 32`: 0 or null means the default.
      auto bf = number_at(p, "beta_fast", cfg.path, src);
      auto bs = number_at(p, "beta_slow", cfg.path, src);
      s.beta_fast = bf && *bf != 0 ? *bf : 32.0;
      s.beta_slow = bs && *bs != 0 ? *bs : 1.0;
      if (!(std::isfinite(s.beta_fast) && s.beta_fast > 0))
        throw_invalid(cfg.path, key_path(src, "beta_fast"), json(s.beta_fast).dump(), "must be a finite number > 0");
      if (!(std::isfinite(s.beta_slow) && s.beta_slow > 0))
        throw_invalid(cfg.path, key_path(src, "beta_slow"), json(s.beta_slow).dump(), "must be a finite number > 0");
      s.attention_factor = number_at(p, "attention_factor", cfg.path, src);
      s.mscale = number_at(p, "mscale", cfg.path, src);
      s.mscale_all_dim = number_at(p, "mscale_all_dim", cfg.path, src);
      if (p.contains("truncate") && !p["truncate"].is_null()) {
        if (!p["truncate"].is_boolean())
          throw_invalid(cfg.path, key_path(src, "truncate"), p["truncate"].dump(), "must be true or false");
        s.truncate = p["truncate"].get<bool>();
      }
      break;
    }
    case RopeType::LongRope: {
      s.original_max_position = positive_int_at(p, "original_max_position_embeddings", cfg, src);
      s.short_factor = number_list_at(p, "short_factor", cfg, src);
      s.long_factor = number_list_at(p, "long_factor", cfg, src);
      auto f = number_at(p, "factor", cfg.path, src);
      s.factor = check_factor(f ? *f : static_cast<double>(cfg.max_position_embeddings) / s.original_max_position);
      s.attention_factor = number_at(p, "attention_factor", cfg.path, src);
      for (const char* k : {"short_factor", "long_factor"}) {
        const auto& v = std::string(k) == "short_factor" ? s.short_factor : s.long_factor;
        if (static_cast<int>(v.size()) != s.pairs())
          throw_invalid(cfg.path, key_path(src, k), "list of " + std::to_string(v.size()),
                        "needs rotary_dim/2 = " + std::to_string(s.pairs()) + " entries");
      }
      break;
    }
    case RopeType::Llama3:
      s.factor = check_factor(required_number(p, "factor", cfg, src));
      s.original_max_position = positive_int_at(p, "original_max_position_embeddings", cfg, src);
      s.low_freq_factor = required_number(p, "low_freq_factor", cfg, src);
      s.high_freq_factor = required_number(p, "high_freq_factor", cfg, src);
      break;
  }
  if (s.attention_factor && !(std::isfinite(*s.attention_factor) && *s.attention_factor >= 0))
    throw_invalid(cfg.path, key_path(src, "attention_factor"), json(*s.attention_factor).dump(),
                  "must be a finite number >= 0");
  if (auto err = validate(s); !err.empty()) throw_invalid(cfg.path, src, "", err);
  return s;
}

}  // namespace ropescale
