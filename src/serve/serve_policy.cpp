#include "ropescale/serve/serve_policy.h"

#include <cmath>

#include "ropescale/config/error.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

using nlohmann::json;

namespace {

const char* kAccepted = "model, none, auto, auto:METHOD (a static type chosen by factor: yarn, linear, ntk, llama3), "
                        "dynamic, dynamic:METHOD (dynamic or dynamic_yarn), or a JSON object";

}  // namespace

ServePolicy parse_serve_policy(const std::string& text) {
  ServePolicy p;
  p.text = text;
  if (text.empty() || text == "model") return p;
  if (text == "none") return p.kind = ServePolicy::Kind::None, p;
  if (!text.empty() && text.front() == '{') {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw std::invalid_argument("'" + text + "' is not a JSON object");
    p.kind = ServePolicy::Kind::Fixed;
    p.fixed = j;
    return p;
  }
  const auto colon = text.find(':');
  const std::string head = text.substr(0, colon), arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (head == "auto") {
    p.kind = ServePolicy::Kind::Auto;
    p.method = arg.empty() ? "yarn" : arg;
    const RopeTypeInfo* info = find_rope_type(p.method);
    if (!info || info->shorthand_arg != ShorthandArg::Factor || info->length_dependent)
      throw std::invalid_argument("auto:" + p.method + ": the method must be a static type chosen by a factor (" + kAccepted + ")");
    p.method = std::string(info->name);
    return p;
  }
  if (head == "dynamic") {
    p.kind = ServePolicy::Kind::Dynamic;
    p.method = arg.empty() ? "dynamic_yarn" : arg;
    const RopeTypeInfo* info = find_rope_type(p.method);
    if (!info || !info->length_dependent || info->type == RopeType::LongRope)
      throw std::invalid_argument("dynamic:" + p.method + ": the method must be dynamic or dynamic_yarn (" + kAccepted + ")");
    p.method = std::string(info->name);
    return p;
  }
  throw std::invalid_argument("'" + text + "' is not a rope policy (" + kAccepted + ")");
}

std::string RopeChoice::label() const {
  if (setting.spec.type == RopeType::Default) return "none";
  std::string l(setting.info().name);
  if (const auto f = setting.params().find("factor"); f != setting.params().end() && f->is_number())
    l += ":" + json(f->get<double>()).dump();
  return l;
}

json RopeChoice::describe() const {
  return {{"label", label()},
          {"rope_scaling", setting.spec.type == RopeType::Default ? json() : setting.params()},
          {"kv_cache", recompute_on_change ? "recomputed when the frequencies change" : "keys rotated once, at write"},
          {"source", source}};
}

RopeChoice choose_rope(const LlamaModel& model, const CompletionRequest& r, const ServePolicy& server, int64_t tokens) {
  ServePolicy policy = server;
  std::string source = "server policy " + (server.text.empty() ? std::string("model") : server.text);
  std::string param;
  if (!r.rope_scaling.is_null()) {
    policy = ServePolicy{ServePolicy::Kind::Fixed, "", r.rope_scaling, r.rope_scaling.dump()};
    source = "request rope_scaling";
    param = "rope_scaling";
  } else if (!r.rope_policy.empty()) {
    try {
      policy = parse_serve_policy(r.rope_policy);
    } catch (const std::invalid_argument& e) {
      throw ApiError(400, std::string("rope_policy: ") + e.what(), "rope_policy");
    }
    source = "request rope_policy " + r.rope_policy;
    param = "rope_policy";
  }
  const int64_t L = model.hp.trained_context;
  json dict;  // null = the model's own
  switch (policy.kind) {
    case ServePolicy::Kind::Model: break;
    case ServePolicy::Kind::None: dict = {{"rope_type", "default"}}; break;
    case ServePolicy::Kind::Fixed: dict = policy.fixed; break;
    case ServePolicy::Kind::Auto:
      try {
        const std::string s = rope_scaling_for_request(model, tokens, RopePolicy{policy.method, 1.0, 64.0});
        dict = s.empty() ? json{{"rope_type", "default"}} : json::parse(s);
      } catch (const std::invalid_argument& e) {
        throw ApiError(400, std::string(e.what()) + " (prompt + max_tokens = " + std::to_string(tokens) + ")",
                       param.empty() ? "max_tokens" : param);
      }
      break;
    case ServePolicy::Kind::Dynamic:
      dict = rope_dict_for(*find_rope_type(policy.method), std::nullopt, L);
      break;
  }
  RopeChoice c;
  try {
    c.setting = rope_setting_for_model(model, dict, dict.is_null() ? "model" : dict.dump());
  } catch (const ConfigError& e) {
    // Said in the request's own terms: the key under rope_scaling, never the server's file path.
    std::string key = e.key();
    if (key.rfind("--rope-scaling", 0) == 0) key = "rope_scaling" + key.substr(14);
    const std::string where = key.empty() ? (param.empty() ? std::string("rope setting") : param) : key;
    throw ApiError(400, where + (e.value().empty() ? "" : " = " + e.value()) + ": " + e.reason(),
                   param.empty() ? "rope_policy" : param);
  }
  c.recompute_on_change = c.setting.spec.is_dynamic();
  c.source = source;
  return c;
}

}  // namespace ropescale
