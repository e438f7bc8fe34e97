#include "ropescale/serve/metrics.h"

#include <fmt/core.h>

namespace ropescale {

const std::vector<double>& ServerMetrics::latency_buckets() {
  static const std::vector<double> b{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return b;
}

void ServerMetrics::record(int status, int prompt_tokens, int completion_tokens, double seconds, const std::string& rope) {
  std::lock_guard<std::mutex> lock(mu_);
  ++by_status_[status];
  if (!rope.empty()) ++by_rope_[rope];
  prompt_tokens_ += uint64_t(std::max(0, prompt_tokens));
  completion_tokens_ += uint64_t(std::max(0, completion_tokens));
  const auto& b = latency_buckets();
  for (size_t i = 0; i < b.size(); ++i)
    if (seconds <= b[i]) ++latency_counts_[i];
  ++latency_count_;
  latency_sum_ += seconds;
}

namespace {

// A label value with Prometheus' escapes (backslash, quote, newline).
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) out += c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : std::string(1, c);
  return out;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

std::string ServerMetrics::prometheus_text(const EngineStats& e, size_t kv_budget, int parallel) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string o;
  family(o, "ropescale_requests_total", "counter", "Completion requests answered, by HTTP status.");
  for (const auto& [status, n] : by_status_) o += fmt::format("ropescale_requests_total{{status=\"{}\"}} {}\n", status, n);
  family(o, "ropescale_requests_by_rope_total", "counter", "Completion requests run, by the RoPE setting they ran with.");
  for (const auto& [rope, n] : by_rope_) o += fmt::format("ropescale_requests_by_rope_total{{rope=\"{}\"}} {}\n", label(rope), n);
  family(o, "ropescale_prompt_tokens_total", "counter", "Prompt tokens processed.");
  o += fmt::format("ropescale_prompt_tokens_total {}\n", prompt_tokens_);
  family(o, "ropescale_completion_tokens_total", "counter", "Tokens generated.");
  o += fmt::format("ropescale_completion_tokens_total {}\n", completion_tokens_);
  family(o, "ropescale_queue_depth", "gauge", "Requests waiting for a session or KV memory.");
  o += fmt::format("ropescale_queue_depth {}\n", e.queued);
  family(o, "ropescale_sessions_busy", "gauge", "Sessions running a request.");
  o += fmt::format("ropescale_sessions_busy {}\n", e.running);
  family(o, "ropescale_sessions", "gauge", "Sessions the server runs at once (--parallel).");
  o += fmt::format("ropescale_sessions {}\n", parallel);
  family(o, "ropescale_kv_bytes_in_use", "gauge", "KV-cache bytes held by running requests.");
  o += fmt::format("ropescale_kv_bytes_in_use {}\n", e.kv_bytes_in_use);
  family(o, "ropescale_kv_bytes_budget", "gauge", "KV-cache bytes running requests may hold (--kv-budget).");
  o += fmt::format("ropescale_kv_bytes_budget {}\n", kv_budget);
  family(o, "ropescale_sessions_cancelled_total", "counter", "Sessions freed because their client disconnected.");
  o += fmt::format("ropescale_sessions_cancelled_total {}\n", e.cancelled);
  family(o, "ropescale_request_duration_seconds", "histogram", "Completion request latency, arrival to last byte.");
  const auto& b = latency_buckets();
  for (size_t i = 0; i < b.size(); ++i)
    o += fmt::format("ropescale_request_duration_seconds_bucket{{le=\"{}\"}} {}\n", b[i], latency_counts_[i]);
  o += fmt::format("ropescale_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", latency_count_);
  o += fmt::format("ropescale_request_duration_seconds_sum {}\n", latency_sum_);
  o += fmt::format("ropescale_request_duration_seconds_count {}\n", latency_count_);
  return o;
}

}  // namespace ropescale
