// An OpenAI-compatible completions endpoint as an evaluation target: vLLM,
// llama-cpp-python's server, ropescale's own `serve` — anything that answers
// POST /v1/completions with `echo` + `logprobs` (vLLM's protocol: the prompt's
// tokens come back with their log-probabilities, the first one null) and offers
// a tokenizer route (vLLM's /tokenize + /detokenize, which `ropescale serve`
// also answers, or llama-cpp-python's /extras/tokenize + /extras/detokenize).
//
// Prompts are sent as text; the client knows the server's token count of every
// text it sends (it cut the text with the server's own tokenizer) and refuses a
// reply whose counts disagree. Every failure — refused connection, HTTP error,
// malformed JSON, missing logprobs, disagreeing counts — is an EndpointError
// naming the URL and what was wrong. 429 and 5xx-while-busy replies (502, 503,
// 504) and dropped connections are retried with exponential backoff.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropescale/model/tokenizer.h"

namespace ropescale {

struct EndpointError : std::runtime_error {
  explicit EndpointError(const std::string& message, int http_status = 0)
      : std::runtime_error(message), http_status(http_status) {}
  int http_status;  // the reply's status when the server answered with an error, else 0
};

struct EndpointOptions {
  std::string url;            // http://host:port, optionally ending in /v1
  std::string api_key;        // sent as "Authorization: Bearer …"
  std::string served_model;   // the "model" field; "" = the first of GET /v1/models
  int concurrency = 4;        // requests in flight at once
  int retries = 4;            // for 429 / 502 / 503 / 504 and dropped connections
  double backoff_s = 0.5;     // first retry delay; doubles, capped at 30 s (Retry-After wins when given)
  double timeout_s = 600;     // per request
};

class Endpoint {
 public:
  // Connects: GET /v1/models (the model name, max_model_len when offered),
  // finds the tokenizer route and the special tokens the server puts before a
  // text prompt (BOS). Throws EndpointError.
  explicit Endpoint(EndpointOptions options);

  const EndpointOptions& options() const { return o_; }
  const std::string& model() const { return model_; }
  std::optional<int64_t> max_model_len() const { return max_model_len_; }
  // ropescale's /v1/models says the model's trained length; others do not.
  std::optional<int64_t> trained_context() const { return trained_context_; }
  // "vllm" (/tokenize) or "llama-cpp-python" (/extras/tokenize).
  const std::string& tokenizer_route() const { return route_; }
  // Token ids the server adds before a text prompt (usually one BOS; may be empty).
  const std::vector<int>& prompt_prefix() const { return prefix_; }

  // The server's tokens of `text`, without special tokens.
  std::vector<int> tokenize(const std::string& text) const;
  // The text of `ids`, read as the start of a prompt (no leading space added).
  std::string detokenize(std::span<const int> ids) const;

  // log p(token i | the server's prefix, tokens < i) for the n_tokens tokens of
  // `text` (the last n_tokens of the echoed prompt); NaN where the server gives
  // none (the first token on some servers). `rope` (null = none) is sent as the
  // request's `rope_scaling`. Throws when the server counts the text differently.
  std::vector<double> prompt_logprobs(const std::string& text, size_t n_tokens, const nlohmann::json& rope) const;
  // The greedy (temperature 0) continuation of `prompt`, up to max_tokens tokens.
  std::string greedy(const std::string& prompt, int max_tokens, const nlohmann::json& rope) const;

  // Runs fn(0 … n−1) with `concurrency` requests in flight; the first exception
  // is rethrown after the running calls end (no new ones start).
  void parallel_for(size_t n, const std::function<void(size_t)>& fn) const;

  // One request: method "GET" or "POST", path from the server root, JSON body.
  // Returns the parsed reply; throws EndpointError (retrying what is retryable).
  nlohmann::json call(const std::string& method, const std::string& path, const nlohmann::json& body = nullptr) const;

 private:
  EndpointOptions o_;
  std::string base_;  // scheme://host:port without a trailing slash or /v1
  std::string model_, route_;
  std::optional<int64_t> max_model_len_, trained_context_;
  std::vector<int> prefix_;
  std::vector<int> tokenize_raw(const std::string& text, bool special) const;
};

// The endpoint's tokenizer behind ropescale's Tokenizer interface, so prompt
// builders (passkey, tasks) cut their texts by the server's token counts.
class EndpointTokenizer : public Tokenizer {
 public:
  explicit EndpointTokenizer(const Endpoint& e, int vocab_size = 0) : e_(e), vocab_(vocab_size) {}
  std::vector<int> encode(const std::string& text, bool bos, bool eos) const override;
  std::string decode(int previous, int token) const override;
  int vocab_size() const override { return vocab_; }
  int bos() const override { return e_.prompt_prefix().empty() ? -1 : e_.prompt_prefix().back(); }
  int eos() const override { return -1; }

 private:
  const Endpoint& e_;
  int vocab_;
};

}  // namespace ropescale
