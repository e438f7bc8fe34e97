#include "ropescale/eval/eval_method.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/rope/rope_spec.h"

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

// A LongRoPE setting from a file: a rope_scaling object, or a whole config.json
// holding one under rope_scaling / rope_parameters.
json longrope_from_file(const std::string& item, const std::string& path, int64_t trained) {
  std::ifstream in(path);
  if (!in) throw_unreadable(path, "cannot open the LongRoPE factors file named by --methods '" + item + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    throw_unreadable(path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (j.is_object() && j.contains("rope_scaling") && j["rope_scaling"].is_object()) j = j["rope_scaling"];
  else if (j.is_object() && j.contains("rope_parameters") && j["rope_parameters"].is_object()) j = j["rope_parameters"];
  if (!j.is_object() || !j.contains("short_factor") || !j.contains("long_factor"))
    throw_invalid(path, "short_factor/long_factor", "(missing)", "a LongRoPE file holds both per-pair factor lists");
  j.erase("type");
  j["rope_type"] = "longrope";
  if (!j.contains("original_max_position_embeddings")) j["original_max_position_embeddings"] = trained;
  return j;
}

}  // namespace

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
  const auto type = parse_rope_type(name);
  if (!type)
    throw_unreadable("--methods", "'" + text + "' is not a method; use none, model, linear:F, ntk:F, dynamic[:F], "
                                  "yarn:F, dynamic_yarn, llama3:F, longrope:FILE or a JSON object");
  json j = {{"rope_type", std::string(to_string(*type))}};
  switch (*type) {
    case RopeType::Default:
      if (!arg.empty()) throw_unreadable("--methods", "'" + text + "': plain RoPE takes no factor");
      break;
    case RopeType::LongRope:
      if (arg.empty()) throw_unreadable("--methods", "'" + text + "': give the factors file, longrope:FILE");
      j = longrope_from_file(text, arg, trained);
      break;
    case RopeType::DynamicYarn:
      if (!arg.empty()) j["factor"] = parse_factor(text, arg);
      j["original_max_position_embeddings"] = trained;
      break;
    case RopeType::Dynamic:
      j["factor"] = arg.empty() ? 1.0 : parse_factor(text, arg);
      break;
    default:
      if (arg.empty()) throw_unreadable("--methods", "'" + text + "': give a factor, e.g. " + name + ":4");
      j["factor"] = parse_factor(text, arg);
      j["original_max_position_embeddings"] = trained;
      if (*type == RopeType::Llama3) j["low_freq_factor"] = 1.0, j["high_freq_factor"] = 4.0;
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
  for (const auto& item : items) {
    if (!item.empty() && item.front() == '{') {
      add(item);
      continue;
    }
    std::stringstream ss(item);
    for (std::string part; std::getline(ss, part, ',');) add(part);
  }
  if (out.empty()) throw_unreadable("--methods", "no methods given");
  return out;
}

std::vector<EvalMethod> default_eval_methods(int64_t trained, int64_t max_ctx) {
  std::vector<std::string> names{"none"};
  std::vector<int> factors;
  for (int f = 2; trained > 0 && int64_t(f / 2) * trained < max_ctx && f <= 64; f *= 2) factors.push_back(f);
  for (const char* family : {"linear", "ntk"})
    for (int f : factors) names.push_back(std::string(family) + ":" + std::to_string(f));
  names.push_back("dynamic");
  for (int f : factors) names.push_back("yarn:" + std::to_string(f));
  names.push_back("dynamic_yarn");
  return parse_eval_methods(names, trained);
}

}  // namespace ropescale
