// The server's counters, rendered in Prometheus' text exposition format
// (version 0.0.4) for GET /metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "ropescale/serve/engine.h"

namespace ropescale {

class ServerMetrics {
 public:
  // A finished HTTP request on /v1/completions: its status, tokens, seconds and rope label ("" = none chosen).
  void record(int status, int prompt_tokens, int completion_tokens, double seconds, const std::string& rope_label);
  std::string prometheus_text(const EngineStats& engine, size_t kv_budget, int parallel) const;

  static const std::vector<double>& latency_buckets();

 private:
  mutable std::mutex mu_;
  std::map<int, uint64_t> by_status_;
  std::map<std::string, uint64_t> by_rope_;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  std::vector<uint64_t> latency_counts_ = std::vector<uint64_t>(latency_buckets().size(), 0);
  uint64_t latency_count_ = 0;
  double latency_sum_ = 0;
};

}  // namespace ropescale
