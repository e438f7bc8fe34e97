#include "ropescale/serve/server.h"

#include <httplib.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <thread>

#include <fmt/core.h>

#include "ropescale/config/error.h"
#include "ropescale/model/llama_model.h"
#include "ropescale/model/tokenizer.h"
#include "ropescale/serve/metrics.h"
#include "ropescale/serve/serve_policy.h"

namespace ropescale {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Compares every byte whatever the first difference, so the time taken says nothing about the key.
bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    diff |= static_cast<unsigned char>((i < a.size() ? a[i] : 0) ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

// Token texts may end inside a UTF-8 character (byte-level vocabularies): replace, never throw.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(e.body()), "application/json");
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct State {
  ServeOptions opt;
  LlamaModel model;
  std::unique_ptr<Tokenizer> tok;
  ServePolicy policy;
  std::string name;
  int64_t max_context = 0;
  int64_t created = std::time(nullptr);
  std::atomic<uint64_t> next_id{1};
  ServerMetrics metrics;
  std::unique_ptr<Engine> engine;
  // Streams whose response is still being written: a drain waits for them before stopping the
  // server (httplib stops calling a stream's provider once it is stopping, which would cut the
  // last events and [DONE]).
  std::atomic<int> open_streams{0};
};

// Parses, tokenizes, chooses the rope setting and admits; throws ApiError.
std::shared_ptr<Job> admit(State& s, const httplib::Request& req, httplib::Response& res) {
  CompletionRequest r = parse_completion_request(req.body, s.opt.limits);
  std::vector<int> prompt = r.prompt ? s.tok->encode(*r.prompt, true, false) : r.prompt_ids;
  if (int64_t(prompt.size()) > s.opt.limits.max_prompt_tokens)
    throw ApiError(400, "prompt: " + std::to_string(prompt.size()) + " tokens exceed the limit of " +
                            std::to_string(s.opt.limits.max_prompt_tokens), "prompt");
  check_prompt_ids(prompt, s.model.hp.vocab_size);
  const int64_t tokens = tokens_needed(prompt.size(), r.max_tokens);
  if (tokens > s.max_context)
    throw ApiError(400, fmt::format("prompt ({} tokens) + max_tokens ({}) = {} exceeds the server's maximum context of {} tokens",
                                    prompt.size(), r.max_tokens, tokens, s.max_context), "max_tokens");
  // A window's positions stop at its sinks + window: the policy sizes the factor for the positions used.
  const SessionOptions& kv_policy = s.opt.engine.kv.session;
  const int64_t positions = kv_policy.kv_window > 0 ? std::min(tokens, kv_policy.kv_sinks + kv_policy.kv_window) : tokens;
  RopeChoice rope = choose_rope(s.model, r, s.policy, positions);
  const size_t kv = CompletionRun::kv_bytes(s.model, tokens, s.opt.engine.kv);
  if (kv > s.opt.engine.kv_budget)
    throw ApiError(400, fmt::format("this request needs {:.1f} MiB of KV cache ({} tokens), more than the server's whole "
                                    "budget of {:.1f} MiB (--kv-budget): shorten the prompt or max_tokens",
                                    kv / 1048576.0, tokens, s.opt.engine.kv_budget / 1048576.0), "max_tokens");
  auto job = std::make_shared<Job>(std::move(r), std::move(prompt), std::move(rope), kv);
  switch (s.engine->submit(job)) {
    case Engine::Admission::Queued: return job;
    case Engine::Admission::QueueFull:
      res.set_header("Retry-After", "1");
      throw ApiError(429, fmt::format("the server is busy: {} requests are already waiting (--queue); retry shortly",
                                      s.engine->options().queue), "", "rate_limit_error", "queue_full");
    case Engine::Admission::Draining: break;
  }
  throw ApiError(503, "the server is shutting down", "", "server_error");
}

json chunk_json(const State& s, const std::string& id, const Job& job, const CompletionStep& step) {
  json choice = {{"index", 0}, {"text", step.text},
                 {"logprobs", job.request.logprobs ? step.logprobs.to_json() : json()},
                 {"finish_reason", step.finish ? json(*step.finish) : json()}};
  return {{"id", id}, {"object", "text_completion"}, {"created", s.created}, {"model", s.name},
          {"choices", json::array({choice})}};
}

// Steps joined into one: text concatenated, logprobs appended in order, the last finish_reason kept.
void append_steps(CompletionStep& into, const std::vector<CompletionStep>& steps) {
  for (const auto& step : steps) {
    into.text += step.text;
    into.logprobs.append(step.logprobs);
    if (step.finish) into.finish = step.finish;
  }
}

void handle_completion(State& s, const httplib::Request& req, httplib::Response& res) {
  const auto t0 = Clock::now();
  std::shared_ptr<Job> job;
  try {
    job = admit(s, req, res);
  } catch (const ApiError& e) {
    send_error(res, e);
    s.metrics.record(e.status, 0, 0, seconds_since(t0), "");
    return;
  }
  const std::string id = fmt::format("cmpl-{:x}-{}", s.created, s.next_id++);
  const json rope = job->rope.describe();
  res.set_header("X-Ropescale-Rope", job->rope.label());
  if (!job->request.stream) {
    CompletionStep all;
    all.finish = "length";
    for (auto steps = job->take(Job::kAll); !steps.empty(); steps = job->take(Job::kAll))  // woken once, at the end
      append_steps(all, steps);
    if (job->error()) {
      send_error(res, *job->error());
      s.metrics.record(job->error()->status, 0, 0, seconds_since(t0), job->rope.label());
      return;
    }
    json body = chunk_json(s, id, *job, all);
    body["usage"] = {{"prompt_tokens", job->prompt_tokens()}, {"completion_tokens", job->completion_tokens()},
                     {"total_tokens", job->prompt_tokens() + job->completion_tokens()}};
    body["rope"] = rope;
    res.set_content(dump(body), "application/json");
    s.metrics.record(200, job->prompt_tokens(), job->completion_tokens(), seconds_since(t0), job->rope.label());
    return;
  }
  auto first = std::make_shared<bool>(true);
  ++s.open_streams;
  res.set_chunked_content_provider(
      "text/event-stream",
      [&s, job, id, rope, t0, first](size_t, httplib::DataSink& sink) {
        auto event = [](const std::string& data) { return "data: " + data + "\n\n"; };
        const auto steps = job->take(size_t(s.opt.stream_interval), std::chrono::milliseconds(s.opt.stream_max_delay_ms));
        if (steps.empty()) {  // ended: an error mid-stream is sent as an error object, then [DONE]
          const int status = job->error() ? job->error()->status : 200;
          const std::string tail = (job->error() ? event(dump(job->error()->body())) : "") + event("[DONE]");
          sink.write(tail.data(), tail.size());
          sink.done();
          s.metrics.record(status, job->prompt_tokens(), job->completion_tokens(), seconds_since(t0), job->rope.label());
          return true;
        }
        // The steps that piled up since the last write (a group of --stream-interval, or a stream that fell
        // behind) in one event: their text joined, their logprobs in order, the last finish_reason.
        CompletionStep group;
        append_steps(group, steps);
        std::string out;
        if (!group.text.empty() || !group.logprobs.tokens.empty() || group.finish) {  // else nothing to say yet
          json chunk = chunk_json(s, id, *job, group);
          if (*first) chunk["rope"] = rope, *first = false;
          out = event(dump(chunk));
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) {
          job->cancelled = true;
          return false;
        }
        return true;
      },
      [&s, job, t0](bool success) {
        if (!success) {  // the client went away mid-stream: free its session
          job->cancelled = true;
          s.metrics.record(499, 0, 0, seconds_since(t0), job->rope.label());
        }
        --s.open_streams;
      });
}

std::string default_name(const std::string& path) {
  std::filesystem::path p(path);
  if (std::filesystem::is_directory(p)) return p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
  return p.stem().string();
}

// SIGTERM/SIGINT reach a handler that only writes one byte to a pipe (async-signal-safe); a watcher
// thread reading the pipe drains the engine and stops the server. (Blocking the signals instead
// would not do: OpenBLAS starts its threads before main, with the signals unblocked.)
int g_signal_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int) {
  const char wake = 1;
  [[maybe_unused]] const ssize_t n = write(g_signal_pipe[1], &wake, 1);
}

}  // namespace

int serve(const ServeOptions& o, const std::function<void(const std::string&, int)>& on_listening) {
  if (pipe(g_signal_pipe) != 0) throw std::runtime_error("serve: cannot create the signal pipe");
  struct sigaction stop_action {}, old_term {}, old_int {};
  stop_action.sa_handler = on_stop_signal;
  sigemptyset(&stop_action.sa_mask);
  stop_action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &stop_action, &old_term);
  sigaction(SIGINT, &stop_action, &old_int);
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-response is a failed write, not a dead server
  struct Restore {
    struct sigaction term, intr;
    ~Restore() {
      sigaction(SIGTERM, &term, nullptr);
      sigaction(SIGINT, &intr, nullptr);
      close(g_signal_pipe[0]);
      close(g_signal_pipe[1]);
    }
  } restore{old_term, old_int};

  State s;
  s.opt = o;
  s.model = load_model(o.model);
  s.tok = tokenizer_for_model(s.model, o.model, o.tokenizer);
  s.name = o.model_name.empty() ? default_name(o.model) : o.model_name;
  s.max_context = o.max_context > 0 ? o.max_context : int64_t(64) * s.model.hp.trained_context;
  std::string policy_text = o.rope_policy;
  if (policy_text.empty())
    policy_text = rope_spec_for_model(s.model).type == RopeType::Default ? "auto" : "model";
  try {
    s.policy = parse_serve_policy(policy_text);
    choose_rope(s.model, CompletionRequest{}, s.policy, s.model.hp.trained_context * 2);  // a fixed setting must be valid
  } catch (const std::invalid_argument& e) {
    throw_unreadable("--rope-policy", e.what());
  } catch (const ApiError& e) {
    throw_unreadable("--rope-policy", e.what());
  }
  s.policy.text = policy_text;
  if (o.engine.parallel < 1 || o.engine.queue < 0) throw_unreadable("--parallel/--queue", "need --parallel ≥ 1 and --queue ≥ 0");
  s.engine = std::make_unique<Engine>(s.model, *s.tok, o.engine);

  httplib::Server svr;
  const size_t handler_threads = size_t(o.engine.parallel + o.engine.queue + 8);
  svr.new_task_queue = [handler_threads] { return new httplib::ThreadPool(handler_threads); };
  svr.set_payload_max_length(o.max_body_bytes);
  svr.set_read_timeout(30, 0);
  svr.set_write_timeout(30, 0);
  svr.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (!o.api_key.empty() && req.path.rfind("/v1/", 0) == 0 &&
        !constant_time_equal(req.get_header_value("Authorization"), "Bearer " + o.api_key)) {
      send_error(res, ApiError(401, "a valid API key is required (Authorization: Bearer …)", "", "authentication_error",
                               "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string why = res.status == 413 ? "the request body is larger than the server accepts (--max-body)"
                            : res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                                                : "HTTP " + std::to_string(res.status);
    send_error(res, ApiError(res.status, why, "", res.status == 404 ? "not_found_error" : "invalid_request_error"));
  });
  svr.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) { handle_completion(s, req, res); });
  // vLLM's tokenizer routes, so an evaluation client can cut windows by this server's own token counts.
  svr.Post("/tokenize", [&](const httplib::Request& req, httplib::Response& res) {
    try {
      const TokenizeRequest r = parse_tokenize_request(req.body, s.opt.limits);
      const std::vector<int> ids = s.tok->encode(r.prompt, r.add_special_tokens, false);
      res.set_content(dump({{"count", ids.size()}, {"max_model_len", s.max_context}, {"tokens", ids}}), "application/json");
    } catch (const ApiError& e) {
      send_error(res, e);
    }
  });
  svr.Post("/detokenize", [&](const httplib::Request& req, httplib::Response& res) {
    try {
      const std::vector<int> ids = parse_detokenize_request(req.body, s.opt.limits);
      check_prompt_ids(ids, s.model.hp.vocab_size);
      std::string text;
      int previous = s.tok->bos();  // a span reads as a prompt's start: no leading space
      for (int id : ids) {
        if (id != s.tok->bos() && id != s.tok->eos()) text += s.tok->decode(previous, id);
        previous = id;
      }
      res.set_content(dump({{"prompt", text}}), "application/json");
    } catch (const ApiError& e) {
      send_error(res, e);
    }
  });
  svr.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
    const json model = {{"id", s.name}, {"object", "model"}, {"created", s.created}, {"owned_by", "ropescale"},
                        {"max_model_len", s.max_context}, {"trained_context", s.model.hp.trained_context},
                        {"rope_policy", s.policy.text}};
    res.set_content(dump({{"object", "list"}, {"data", json::array({model})}}), "application/json");
  });
  svr.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    res.status = s.engine->draining() ? 503 : 200;
    res.set_content(dump({{"status", s.engine->draining() ? "draining" : "ok"}}), "application/json");
  });
  svr.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(s.metrics.prometheus_text(s.engine->stats(), o.engine.kv_budget, o.engine.parallel),
                    "text/plain; version=0.0.4");
  });

  const int port = o.port == 0 ? svr.bind_to_any_port(o.host) : (svr.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0) throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port));
  std::atomic<bool> signalled{false}, listening_ended{false};
  std::thread watcher([&] {
    char c = 0;
    while (read(g_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    if (listening_ended) return;
    signalled = true;
    s.engine->drain();  // in-flight requests finish; new ones get 503
    // …and their streams are written to the end (bounded: a client that stopped reading is dropped
    // by the 30 s write timeout anyway).
    for (int i = 0; i < 3000 && s.open_streams > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    svr.stop();
  });
  if (on_listening) on_listening(o.host, port);
  const bool ok = svr.listen_after_bind();
  listening_ended = true;
  if (!signalled) on_stop_signal(0);  // listen failed: wake the watcher
  watcher.join();
  return ok || signalled ? 0 : 1;
}

}  // namespace ropescale
