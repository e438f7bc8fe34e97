// `ropescale serve`: the OpenAI-compatible HTTP server (cpp-httplib) over the
// engine — POST /v1/completions, GET /v1/models, /health, /metrics — where
// each request may choose its RoPE scaling. Loopback by default; SIGTERM or
// SIGINT drains in-flight requests, then the server exits 0.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "ropescale/serve/completion_request.h"
#include "ropescale/serve/engine.h"

namespace ropescale {

struct ServeOptions {
  std::string model, tokenizer;
  std::string model_name;            // the id /v1/models reports (default: the file's stem)
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0 = any free port (printed)
  std::string api_key;               // empty = no authentication
  std::string rope_policy;           // "" = auto for a plain-RoPE model, else the model's own setting
  EngineOptions engine;
  RequestLimits limits;
  size_t max_body_bytes = 8 << 20;
  int max_context = 0;               // longest prompt + max_tokens (0 = 64 × the trained context)
  // Streams send their tokens in groups of up to stream_interval (vLLM's --stream-interval), a group
  // leaving at most stream_max_delay_ms after its first token: fewer wake-ups and writes per token.
  int stream_interval = 1;
  int stream_max_delay_ms = 50;
};

// Runs until SIGTERM/SIGINT (drains, returns 0). Throws ConfigError when the model, tokenizer
// or a flag is unusable, std::runtime_error when the address cannot be bound.
// `on_listening(host, port)` is called once the socket is bound (the CLI prints the address).
int serve(const ServeOptions& options, const std::function<void(const std::string&, int)>& on_listening);

}  // namespace ropescale
