#include "ropescale/eval/eval_method.h"

#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/model_config.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

namespace {

using json = nlohmann::json;

double parse_factor(const std::string& item, const std::string& text) {
  size_t used = 0;
  double f = 0;
  try {
    f = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !std::isfinite(f) || f <= 0)
    throw_unreadable("--methods", "'" + item + "': factor '" + text + "' is not a number > 0");
  return f;
}

// A setting whose lists come from a file (LongRoPE factors): a rope_scaling
// object, or a whole config.json holding one under rope_scaling / rope_parameters.
json settings_from_file(const std::string& path, const RopeTypeInfo& info, int64_t trained) {
  json j = read_rope_dict_file(path);
  for (const RopeParam& rp : info.params)
    if (rp.kind == ParamKind::PairList && !j.contains(rp.key))
      throw_invalid(path, std::string(rp.key), "(missing)",
                    "a " + std::string(info.name) + " file holds its per-pair factor lists");
  j.erase("type");
  j["rope_type"] = std::string(info.name);
  if (info.needs_original_length && !j.contains("original_max_position_embeddings"))
    j["original_max_position_embeddings"] = trained;
  return j;
}

}  // namespace

// "none, model, linear:F, ntk:F, dynamic[:F], …" from the registry rows.
std::string eval_method_shorthands() {
  std::string out = "model";
  for (const RopeTypeInfo& r : rope_types()) {
    out += ", " + std::string(r.shorthand);
    switch (r.shorthand_arg) {
      case ShorthandArg::None: break;
      case ShorthandArg::Factor: out += ":F"; break;
      case ShorthandArg::OptionalFactor: out += "[:F]"; break;
      case ShorthandArg::File: out += ":FILE"; break;
    }
  }
  return out;
}


EvalMethod parse_eval_method(const std::string& text, int64_t trained) {
  if (!text.empty() && text.front() == '{') {
    json j;
    try {
      j = json::parse(text);
    } catch (const json::exception& e) {
      throw_unreadable("--methods", "'" + text + "' is not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) throw_unreadable("--methods", "'" + text + "' is not a JSON object");
    return {safe_dump(j), safe_dump(j)};
  }
  const auto colon = text.find(':');
  const std::string name = text.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (name == "model") {
    if (!arg.empty()) throw_unreadable("--methods", "'" + text + "': 'model' takes no argument");
    return {text, ""};
  }
  const RopeTypeInfo* info = find_rope_type(name);
  if (!info) throw_unreadable("--methods", "'" + text + "' is not a method; use " + eval_method_shorthands() + " or a JSON object");
  json j;
  switch (info->shorthand_arg) {
    case ShorthandArg::None:
      if (!arg.empty()) throw_unreadable("--methods", "'" + text + "': " + std::string(info->name) + " takes no factor");
      j = rope_dict_for(*info, std::nullopt, trained);
      break;
    case ShorthandArg::File:
      if (arg.empty())
        throw_unreadable("--methods", "'" + text + "': give the factors file, " + std::string(info->shorthand) + ":FILE");
      j = settings_from_file(arg, *info, trained);
      break;
    case ShorthandArg::OptionalFactor:
      j = rope_dict_for(*info, arg.empty() ? std::nullopt : std::optional<double>(parse_factor(text, arg)), trained);
      break;
    case ShorthandArg::Factor:
      if (arg.empty()) throw_unreadable("--methods", "'" + text + "': give a factor, e.g. " + name + ":4");
      j = rope_dict_for(*info, parse_factor(text, arg), trained);
      break;
  }
  return {text, safe_dump(j)};
}

std::vector<EvalMethod> parse_eval_methods(const std::vector<std::string>& items, int64_t trained) {
  std::vector<EvalMethod> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& item) {
    if (item.empty()) return;
    EvalMethod m = parse_eval_method(item, trained);
    if (!seen.insert(m.label).second) throw_unreadable("--methods", "'" + m.label + "' is given twice");
    out.push_back(std::move(m));
  };
  // Items split at the commas outside JSON objects (and their strings), so an inline dict may
  // sit anywhere in a list: none,yarn:8,{"rope_type":"yarn","factor":8,"beta_fast":6}.
  for (const auto& item : items) {
    std::string part;
    int depth = 0;
    bool in_string = false, escaped = false;
    for (char ch : item) {
      if (in_string) {
        if (escaped) escaped = false;
        else if (ch == '\\') escaped = true;
        else if (ch == '"') in_string = false;
      } else if (ch == '"' && depth > 0) {
        in_string = true;
      } else if (ch == '{' || ch == '[') {
        ++depth;
      } else if ((ch == '}' || ch == ']') && depth > 0) {
        --depth;
      } else if (ch == ',' && depth == 0) {
        add(part);
        part.clear();
        continue;
      }
      part += ch;
    }
    add(part);
  }
  if (out.empty()) throw_unreadable("--methods", "no methods given");
  return out;
}

std::vector<RopeSetting> resolve_eval_methods(const LlamaModel& model, const std::vector<EvalMethod>& methods) {
  std::vector<RopeSetting> out;
  out.reserve(methods.size());
  for (const auto& m : methods) out.push_back(rope_setting_for_model(model, m.rope_scaling, m.label));
  return out;
}

std::vector<EvalMethod> default_eval_methods(int64_t trained, int64_t max_ctx) {
  std::vector<int> factors;
  for (int f = 2; trained > 0 && int64_t(f / 2) * trained < max_ctx && f <= 64; f *= 2) factors.push_back(f);
  std::vector<std::string> names;
  for (const RopeTypeInfo& r : rope_types()) {
    if (!r.in_default_comparison) continue;
    if (r.shorthand_arg == ShorthandArg::Factor)
      for (int f : factors) names.push_back(std::string(r.shorthand) + ":" + std::to_string(f));
    else
      names.emplace_back(r.shorthand);
  }
  return parse_eval_methods(names, trained);
}

}  // namespace ropescale
