#include "ropescale/config/rope_params.h"

#include <cmath>

#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

using nlohmann::json;

namespace {

std::string key_path(const std::string& source_key, const std::string& key) {
  return source_key.empty() ? key : source_key + "." + key;
}

int64_t positive_int_at(const json& d, const std::string& key, const ModelConfig& cfg,
                        const std::string& source_key) {
  auto v = number_at(d, key, cfg.path, source_key);
  if (!v) throw_invalid(cfg.path, key_path(source_key, key), "(missing)", "required for this rope_type");
  if (!(*v > 0) || *v != std::floor(*v) || *v > 1e15)
    throw_invalid(cfg.path, key_path(source_key, key), d.at(key).dump(), "must be a positive integer");
  return static_cast<int64_t>(*v);
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
    p["rope_type"] = p.contains("type") && !p["type"].is_null() ? p["type"] : json(to_string(RopeType::Default));
  p.erase("type");
  // Aliases become the canonical name (Phi-3 BC code maps "su" to longrope; "none" is default).
  const RopeTypeInfo* info = p["rope_type"].is_string() ? find_rope_type(p["rope_type"].get<std::string>()) : nullptr;
  if (info) p["rope_type"] = std::string(info->name);
  if (!p.contains("rope_theta") || p["rope_theta"].is_null()) p["rope_theta"] = 10000.0;
  if (!p.contains("partial_rotary_factor") && cfg.partial_rotary_factor != 1.0)
    p["partial_rotary_factor"] = cfg.partial_rotary_factor;
  if (info && info->needs_original_length) {
    if (cfg.original_max_position_embeddings)
      p["original_max_position_embeddings"] = *cfg.original_max_position_embeddings;
    else if (!p.contains("original_max_position_embeddings") || p["original_max_position_embeddings"].is_null())
      p["original_max_position_embeddings"] = cfg.max_position_embeddings;
  }
  return p;
}

const RopeTypeInfo* rope_row_of(const json& p) {
  if (!p.is_object() || !p.contains("rope_type")) return &rope_type_info(RopeType::Default);
  return p["rope_type"].is_string() ? find_rope_type(p["rope_type"].get<std::string>()) : nullptr;
}

json rope_dict_for(const RopeTypeInfo& info, std::optional<double> factor, int64_t trained) {
  json j = {{"rope_type", std::string(info.name)}};
  for (const RopeParam& rp : info.params) {
    const std::string key(rp.key);
    if (rp.kind == ParamKind::Factor) {
      if (factor) j[key] = *factor;
      else if (rp.required_by_hf && rp.when_missing == ParamDefault::Value) j[key] = rp.default_value;
    } else if (rp.kind == ParamKind::Length && info.needs_original_length) {
      j[key] = trained;
    } else if (rp.required_by_hf && rp.when_missing == ParamDefault::Value) {
      j[key] = rp.default_value;
    }
  }
  return j;
}

RopeKeySchema rope_key_schema(const std::string& t) {
  const RopeTypeInfo* info = find_rope_type(t);
  if (!info || info->name != t) return {};  // callers pass the standardized (canonical) name
  RopeKeySchema k{true, {"rope_type"}, {}};
  for (const RopeParam& rp : info->params) (rp.required_by_hf ? k.required : k.optional).emplace_back(rp.key);
  k.required.emplace_back("rope_theta");
  return k;
}

namespace {

// Reads one parameter of the type's row from the dict into the spec: the
// schema and the parsing in one place. Missing values: HF v5's length ratio,
// else an error when HF requires the key, else the row's default.
void read_param(const json& d, const RopeParam& rp, const RopeTypeInfo& info, RopeSpec& s, const ModelConfig& cfg,
                const std::string& src) {
  const std::string key(rp.key);
  const std::string where = key_path(src, key);
  const bool present = d.is_object() && d.contains(key) && !d.at(key).is_null();
  auto missing = [&] {
    throw_invalid(cfg.path, where, "(missing)", "required for rope_type '" + std::string(info.name) + "'");
  };
  switch (rp.kind) {
    case ParamKind::Informational:
      return;
    case ParamKind::Flag:
      if (!present) {
        if (rp.required_by_hf) missing();
        if (rp.when_missing == ParamDefault::Value) s.*std::get<bool RopeSpec::*>(rp.field) = rp.default_value != 0;
        return;
      }
      if (!d.at(key).is_boolean()) throw_invalid(cfg.path, where, d.at(key).dump(), "must be true or false");
      s.*std::get<bool RopeSpec::*>(rp.field) = d.at(key).get<bool>();
      return;
    case ParamKind::PairList: {
      if (!present) {
        if (rp.required_by_hf) missing();
        return;
      }
      auto list = number_list_at(d, key, cfg, src);
      if (static_cast<int>(list.size()) != s.pairs())
        throw_invalid(cfg.path, where, "list of " + std::to_string(list.size()),
                      "needs rotary_dim/2 = " + std::to_string(s.pairs()) + " entries");
      if (auto e = pair_list_problem(list, s.pairs(), key); !e.empty()) throw_invalid(cfg.path, where, "", e);
      s.*std::get<std::vector<double> RopeSpec::*>(rp.field) = std::move(list);
      return;
    }
    case ParamKind::Length:
      if (!present) {
        if (rp.required_by_hf) missing();
        return;
      }
      s.*std::get<int64_t RopeSpec::*>(rp.field) = positive_int_at(d, key, cfg, src);
      return;
    case ParamKind::Factor:
    case ParamKind::Number:
    case ParamKind::OptionalNumber: {
      auto v = number_at(d, key, cfg.path, src);
      if (v && rp.zero_means_default && *v == 0) v.reset();  // HF: `get(key) or default`
      if (!v) {
        if (rp.when_missing == ParamDefault::LengthRatio && s.original_max_position > 0)
          v = static_cast<double>(cfg.max_position_embeddings) / static_cast<double>(s.original_max_position);
        else if (rp.required_by_hf)
          missing();
        else if (rp.when_missing == ParamDefault::Value)
          v = rp.default_value;
      }
      if (!v) return;
      const std::string shown = present ? d.at(key).dump() : json(*v).dump();
      if (rp.kind == ParamKind::Factor) {
        if (auto e = factor_problem(*v); !e.empty()) throw_invalid(cfg.path, where, shown, e);
      } else if (rp.kind == ParamKind::Number && !(std::isfinite(*v) && *v > 0)) {
        throw_invalid(cfg.path, where, shown, "must be a finite number > 0");
      }
      if (rp.kind == ParamKind::OptionalNumber)
        s.*std::get<std::optional<double> RopeSpec::*>(rp.field) = *v;
      else
        s.*std::get<double RopeSpec::*>(rp.field) = *v;
      return;
    }
  }
}

}  // namespace

RopeSpec rope_spec_from_parameters(const json& p, const ModelConfig& cfg, const std::string& src) {
  RopeSpec s;
  if (!p.contains("rope_type") || !p["rope_type"].is_string())
    throw_invalid(cfg.path, key_path(src, "rope_type"), (p.contains("rope_type") ? safe_dump(p["rope_type"]) : std::string("(missing)")), "must be a string");
  const std::string type_name = p["rope_type"].get<std::string>();
  const RopeTypeInfo* info = find_rope_type(type_name);
  if (!info)
    throw_invalid(cfg.path, key_path(src, "rope_type"), "\"" + type_name + "\"",
                  "unknown rope_type (known: " + rope_type_names() + ")");
  s.type = info->type;
  s.layout = cfg.layout;
  s.convention = cfg.convention;
  s.theta = number_at(p, "rope_theta", cfg.path, src).value_or(10000.0);
  if (auto e = theta_problem(s.theta); !e.empty())
    throw_invalid(cfg.path, key_path(src, "rope_theta"), p.contains("rope_theta") ? safe_dump(p["rope_theta"]) : "10000", e);

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
  for (const RopeParam& rp : info->params) read_param(p, rp, *info, s, cfg, src);
  if (s.attention_factor && !(std::isfinite(*s.attention_factor) && *s.attention_factor >= 0))
    throw_invalid(cfg.path, key_path(src, "attention_factor"), json(*s.attention_factor).dump(),
                  "must be a finite number >= 0");
  if (auto err = validate(s); !err.empty()) throw_invalid(cfg.path, src, "", err);
  return s;
}

}  // namespace ropescale
