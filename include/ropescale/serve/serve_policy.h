// Which RoPE setting a served request runs with: its own `rope_scaling`, else
// its `rope_policy`, else the server's --rope-policy. Resolved once per
// request into a RopeChoice the session, the response and /metrics carry.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "ropescale/config/rope_setting.h"
#include "ropescale/model/llama_model.h"
#include "ropescale/model/session.h"
#include "ropescale/serve/completion_request.h"

namespace ropescale {

struct ServePolicy {
  enum class Kind {
    Model,    // the model file's own setting
    None,     // plain RoPE
    Fixed,    // one setting (a JSON object) for every request
    Auto,     // factor 1.0 within the trained context; above it `method` at the factor prompt + max_tokens needs
    Dynamic,  // a length-dependent `method` (dynamic NTK / dynamic YaRN), exact: re-prefilled as the length changes
  };
  Kind kind = Kind::Model;
  std::string method;     // Auto: a static type chosen by factor; Dynamic: dynamic or dynamic_yarn
  nlohmann::json fixed;   // Kind::Fixed
  std::string text;       // as given
};

// "model", "none", "auto", "auto:METHOD", "dynamic", "dynamic:METHOD", or a JSON
// object (a fixed setting). Throws std::invalid_argument saying what is accepted.
ServePolicy parse_serve_policy(const std::string& text);

struct RopeChoice {
  RopeSetting setting;
  // Length-dependent methods (dynamic NTK / YaRN, LongRoPE): whenever the frequencies change with the
  // length, the run re-prefills the whole sequence in one chunk, so every token's logits are those of
  // a fresh full prefill at its length. Re-rotating cached keys alone is not that: the hidden states of
  // earlier tokens (and so the keys and values of every layer after the first) were computed with
  // the old frequencies.
  bool recompute_on_change = false;
  std::string source;                               // "request rope_scaling", "request rope_policy auto", "server policy model" …
  // What responses and /metrics report: the setting's short label and dict, the key rotation, the source.
  std::string label() const;
  nlohmann::json describe() const;
};

// The setting for a request of `tokens` tokens (prompt + max_tokens). Throws ApiError (400) naming
// rope_scaling / rope_policy when the request's setting is invalid by `check`'s rules or the policy
// cannot serve that length.
RopeChoice choose_rope(const LlamaModel& model, const CompletionRequest& request, const ServePolicy& server_policy,
                       int64_t tokens);

}  // namespace ropescale
