// One POST /v1/completions body, parsed and checked once into a typed value
// (the OpenAI legacy completions schema plus ropescale's `rope_scaling` and
// `rope_policy`). Anything wrong is an ApiError naming the parameter — the
// server answers it as an OpenAI error object; nothing here knows HTTP.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ropescale {

// An OpenAI-style error: {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string param = "", std::string type = "invalid_request_error",
           std::string code = "")
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string type, param, code;
  nlohmann::json body() const;
};

struct RequestLimits {
  int max_tokens = 4096;          // largest max_tokens accepted
  int max_prompt_tokens = 65536;  // longest prompt (tokens)
  int max_json_depth = 16;
  int max_logprobs = 20;          // OpenAI's limit for completions is 5; vLLM allows 20
  int max_stop = 4;
};

struct CompletionRequest {
  std::string model;                  // informational (one model per server)
  std::optional<std::string> prompt;  // text …
  std::vector<int> prompt_ids;        // … or token ids (prompt unset)
  int max_tokens = 16;                // OpenAI's default
  double temperature = 1.0;
  double top_p = 1.0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool stream = false;
  bool echo = false;
  std::optional<int> logprobs;        // top-N alternatives per token (0 = the chosen token's only)
  nlohmann::json rope_scaling;        // null, or an object as vLLM/HF take it (inline factors only)
  std::string rope_policy;            // "", or a policy name (see serve_policy.h)
};

// Throws ApiError (400) for malformed JSON, a body nested deeper than the limit,
// wrong types, values out of range, or fields ropescale cannot honour (n > 1,
// best_of > 1, several prompts). Unknown fields are ignored, as OpenAI's are.
CompletionRequest parse_completion_request(const std::string& body, const RequestLimits& limits);

// POST /tokenize and /detokenize, in vLLM's shapes: {"prompt": text, "add_special_tokens": bool}
// and {"tokens": [ids]} (ids are range-checked against the vocabulary by the caller).
struct TokenizeRequest {
  std::string prompt;
  bool add_special_tokens = true;  // BOS first, as a text prompt to /v1/completions gets it
};
TokenizeRequest parse_tokenize_request(const std::string& body, const RequestLimits& limits);
std::vector<int> parse_detokenize_request(const std::string& body, const RequestLimits& limits);

}  // namespace ropescale
