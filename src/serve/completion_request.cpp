#include "ropescale/serve/completion_request.h"

#include <cmath>

namespace ropescale {

using nlohmann::json;

json ApiError::body() const {
  return {{"error", {{"message", what()}, {"type", type}, {"param", param.empty() ? json() : json(param)},
                     {"code", code.empty() ? json() : json(code)}}}};
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& why) { throw ApiError(400, param + ": " + why, param); }

double number(const json& v, const std::string& param, double lo, double hi) {
  if (!v.is_number()) bad(param, "must be a number, got " + v.dump().substr(0, 40));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) bad(param, "must be in [" + json(lo).dump() + ", " + json(hi).dump() + "], got " + v.dump());
  return x;
}

int64_t integer(const json& v, const std::string& param, int64_t lo, int64_t hi) {
  if (!v.is_number_integer() && !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()))
    bad(param, "must be an integer, got " + v.dump().substr(0, 40));
  const double x = v.get<double>();
  if (!(x >= double(lo) && x <= double(hi)))
    bad(param, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump());
  return static_cast<int64_t>(x);
}

bool boolean(const json& v, const std::string& param) {
  if (!v.is_boolean()) bad(param, "must be true or false, got " + v.dump().substr(0, 40));
  return v.get<bool>();
}

}  // namespace

namespace {

// Depth-limited parse: a body of nested arrays must not exhaust the stack.
json parse_body(const std::string& body, const RequestLimits& limits) {
  bool too_deep = false;
  json j = json::parse(body, [&](int depth, json::parse_event_t, json&) {
    if (depth > limits.max_json_depth) too_deep = true;
    return !too_deep;
  }, false);
  if (too_deep) throw ApiError(400, "the request body nests deeper than " + std::to_string(limits.max_json_depth) + " levels");
  if (j.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

}  // namespace

TokenizeRequest parse_tokenize_request(const std::string& body, const RequestLimits& limits) {
  json j = parse_body(body, limits);
  TokenizeRequest r;
  if (!j.contains("prompt") || !j["prompt"].is_string()) bad("prompt", "is required and must be a string");
  r.prompt = j["prompt"].get<std::string>();
  if (j.contains("add_special_tokens") && !j["add_special_tokens"].is_null())
    r.add_special_tokens = boolean(j["add_special_tokens"], "add_special_tokens");
  return r;
}

std::vector<int> parse_detokenize_request(const std::string& body, const RequestLimits& limits) {
  json j = parse_body(body, limits);
  if (!j.contains("tokens") || !j["tokens"].is_array()) bad("tokens", "is required and must be an array of token ids");
  const json& t = j["tokens"];
  if (t.size() > size_t(limits.max_prompt_tokens))
    bad("tokens", std::to_string(t.size()) + " tokens exceed the limit of " + std::to_string(limits.max_prompt_tokens));
  std::vector<int> ids;
  ids.reserve(t.size());
  for (size_t i = 0; i < t.size(); ++i)
    ids.push_back(static_cast<int>(integer(t[i], "tokens[" + std::to_string(i) + "]", 0, INT32_MAX)));
  return ids;
}

CompletionRequest parse_completion_request(const std::string& body, const RequestLimits& limits) {
  json j = parse_body(body, limits);
  CompletionRequest r;
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  if (has("model")) {
    if (!j["model"].is_string()) bad("model", "must be a string");
    r.model = j["model"].get<std::string>();
  }
  if (!has("prompt")) bad("prompt", "is required");
  const json& p = j["prompt"];
  if (p.is_string()) {
    r.prompt = p.get<std::string>();
    if (r.prompt->empty()) bad("prompt", "is empty");
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    if (p.size() > size_t(limits.max_prompt_tokens))
      bad("prompt", std::to_string(p.size()) + " tokens exceed the limit of " + std::to_string(limits.max_prompt_tokens));
    for (size_t i = 0; i < p.size(); ++i)
      r.prompt_ids.push_back(static_cast<int>(integer(p[i], "prompt[" + std::to_string(i) + "]", 0, INT32_MAX)));
  } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
    r.prompt = p[0].get<std::string>();  // a batch of one
    if (r.prompt->empty()) bad("prompt", "is empty");
  } else if (p.is_array() && p.empty()) {
    bad("prompt", "is empty");
  } else if (p.is_array()) {
    bad("prompt", "one prompt per request (send several requests; they are served concurrently)");
  } else {
    bad("prompt", "must be a string or an array of token ids");
  }
  if (has("max_tokens")) r.max_tokens = static_cast<int>(integer(j["max_tokens"], "max_tokens", 0, limits.max_tokens));
  if (has("temperature")) r.temperature = number(j["temperature"], "temperature", 0.0, 2.0);
  if (has("top_p")) r.top_p = number(j["top_p"], "top_p", 0.0, 1.0);
  if (has("top_p") && r.top_p == 0.0) bad("top_p", "must be > 0");
  if (has("seed")) r.seed = static_cast<uint64_t>(integer(j["seed"], "seed", INT64_MIN, INT64_MAX));
  if (has("stream")) r.stream = boolean(j["stream"], "stream");
  if (has("echo")) r.echo = boolean(j["echo"], "echo");
  if (has("logprobs")) r.logprobs = static_cast<int>(integer(j["logprobs"], "logprobs", 0, limits.max_logprobs));
  if (has("n") && integer(j["n"], "n", 1, 1) != 1) bad("n", "must be 1");
  if (has("best_of") && integer(j["best_of"], "best_of", 1, 1) != 1) bad("best_of", "must be 1");
  if (has("stop")) {
    const json& s = j["stop"];
    if (s.is_string()) {
      r.stop.push_back(s.get<std::string>());
    } else if (s.is_array()) {
      if (s.size() > size_t(limits.max_stop)) bad("stop", "at most " + std::to_string(limits.max_stop) + " sequences");
      for (const auto& x : s) {
        if (!x.is_string()) bad("stop", "must be a string or an array of strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "must be a string or an array of strings");
    }
    for (const auto& x : r.stop)
      if (x.empty()) bad("stop", "sequences must not be empty");
  }
  if (has("rope_scaling")) {
    if (!j["rope_scaling"].is_object())
      bad("rope_scaling", "must be a JSON object (the dict vLLM and HF take, factor lists inline), got " +
                              j["rope_scaling"].dump().substr(0, 40));
    r.rope_scaling = j["rope_scaling"];
  }
  if (has("rope_policy")) {
    if (!j["rope_policy"].is_string()) bad("rope_policy", "must be a string");
    r.rope_policy = j["rope_policy"].get<std::string>();
  }
  if (!r.rope_scaling.is_null() && !r.rope_policy.empty()) bad("rope_policy", "give rope_scaling or rope_policy, not both");
  return r;
}

}  // namespace ropescale
