// serve
#include <cstdlib>
#include <memory>

#include <fmt/core.h>

#include "commands.h"
#include "runtime_flags.h"
#include "ropescale/config/error.h"
#include "ropescale/serve/server.h"

namespace ropescale::cli {

namespace {

struct ServeCliOptions {
  ServeOptions serve;
  std::string kv_cache = "f32";
  RuntimeFlags kv_flags;  // --kv-window, --kv-sinks, --kv-budget-tokens, --kv-protect, --self-extend-*
  double kv_budget_mib = 1024, max_body_mib = 8;
};

void run_serve(ServeCliOptions o) {
  if (o.serve.api_key.empty())
    if (const char* k = std::getenv("ROPESCALE_API_KEY")) o.serve.api_key = k;
  if (!(o.kv_budget_mib > 0)) throw_unreadable("--kv-budget", "must be > 0 MiB");
  if (!(o.max_body_mib > 0)) throw_unreadable("--max-body", "must be > 0 MiB");
  o.serve.engine.kv_budget = static_cast<size_t>(o.kv_budget_mib * 1048576.0);
  o.serve.max_body_bytes = static_cast<size_t>(o.max_body_mib * 1048576.0);
  o.kv_flags.kv_cache = o.kv_cache;
  apply_kv_flags(o.kv_flags, o.serve.engine.kv.session);  // checked as every command checks them
  if (!o.kv_flags.kv_protect.empty()) o.serve.engine.kv.protect = std::make_shared<const TokenPattern>(o.kv_flags.kv_protect);
  const SessionOptions& kv = o.serve.engine.kv.session;
  std::string retention = kv.kv_window > 0   ? fmt::format(", window {} + sinks {}", kv.kv_window, kv.kv_sinks)
                          : kv.kv_budget > 0 ? fmt::format(", H2O budget {} tokens", kv.kv_budget)
                                             : "";
  if (kv.self_extend.enabled()) retention += fmt::format(", Self-Extend G {} W {}", kv.self_extend.group, kv.self_extend.window);
  const bool loopback = o.serve.host == "127.0.0.1" || o.serve.host == "localhost" || o.serve.host == "::1";
  if (!loopback && o.serve.api_key.empty())
    fmt::print(stderr, "ropescale: warning: serving on {} without --api-key: anyone who can reach it can use it\n", o.serve.host);
  serve(o.serve, [&](const std::string& host, int port) {
    fmt::print("ropescale: serving {} on http://{}:{} — {} sessions, queue {}, KV budget {:.0f} MiB of {} caches{}{}\n", o.serve.model,
               host, port, o.serve.engine.parallel, o.serve.engine.queue, o.kv_budget_mib, to_string(kv.kv_cache), retention,
               o.serve.api_key.empty() ? "" : ", API key required");
    std::fflush(stdout);
  });
}

}  // namespace

void add_serve_commands(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ServeCliOptions>();
  auto* c = app.add_subcommand("serve", "OpenAI-compatible server (/v1/completions) where each request may choose its RoPE scaling");
  auto& s = o->serve;
  c->add_option("--model", s.model, "Model file (GGUF, llama2.c, HF directory)")->required();
  c->add_option("--tokenizer", s.tokenizer, "Tokenizer (default: the model's own or beside it)");
  c->add_option("--name", s.model_name, "Model id reported by /v1/models (default: the file's name)");
  c->add_option("--host", s.host, "Address to bind (default loopback only)")->capture_default_str();
  c->add_option("--port", s.port, "Port (0 = any free port, printed at start)")->capture_default_str()->check(CLI::Range(0, 65535));
  c->add_option("--api-key", s.api_key, "Require 'Authorization: Bearer KEY' on /v1/* (or set ROPESCALE_API_KEY)");
  c->add_option("--rope-policy", s.rope_policy,
                "Setting for requests that name none: model, none, auto[:METHOD] (factor 1.0 within the trained context, "
                "else the factor prompt + max_tokens needs), dynamic[:METHOD] (length-dependent, exact: re-prefilled whenever the length moves the frequencies), "
                "or a JSON object. Default: auto for a plain-RoPE model, else model");
  c->add_option("--parallel", s.engine.parallel, "Requests running at once")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--queue", s.engine.queue, "Requests waiting beyond those (more get 429)")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--kv-budget", o->kv_budget_mib, "KV-cache MiB all running requests may hold")->capture_default_str();
  add_kv_cache_option(c, o->kv_cache);
  add_runtime_flags(c, o->kv_flags, {.kv_cache = false, .key_rotation = false, .chunk = false, .threads = false});
  c->add_option("--stream-interval", s.stream_interval,
                "Streams send tokens in groups of up to N (vLLM's --stream-interval): fewer wake-ups and writes per token, "
                "for throughput; 1 = every token as it comes")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  c->add_option("--stream-max-delay", s.stream_max_delay_ms, "With --stream-interval N > 1: a group leaves at most MS milliseconds after its first token")
      ->capture_default_str()
      ->check(CLI::Range(1, 60000));
  c->add_option("--threads", s.engine.threads, "Threads per step (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--max-context", s.max_context, "Longest prompt + max_tokens (0 = 64 × the trained context)")->capture_default_str();
  c->add_option("--max-tokens-limit", s.limits.max_tokens, "Largest max_tokens accepted")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--max-prompt-tokens", s.limits.max_prompt_tokens, "Longest prompt accepted (tokens)")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--max-body", o->max_body_mib, "Largest request body (MiB; more gets 413)")->capture_default_str();
  c->callback([o, &exit_code] { run_serve(*o), exit_code = 0; });
}

}  // namespace ropescale::cli
