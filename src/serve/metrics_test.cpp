#include "ropescale/serve/metrics.h"

#include <gtest/gtest.h>

namespace ropescale {
namespace {

TEST(ServerMetrics, PrometheusTextCarriesCountersGaugesAndACumulativeHistogram) {
  ServerMetrics m;
  m.record(200, 10, 5, 0.03, "none");
  m.record(200, 20, 7, 3.0, "yarn:8.0");
  m.record(400, 0, 0, 0.001, "");
  m.record(429, 0, 0, 0.001, "");
  const std::string t = m.prometheus_text(EngineStats{2, 1, 4096, 3}, 1 << 20, 4);
  for (const char* line : {"ropescale_requests_total{status=\"200\"} 2", "ropescale_requests_total{status=\"429\"} 1",
                           "ropescale_requests_by_rope_total{rope=\"yarn:8.0\"} 1", "ropescale_prompt_tokens_total 30",
                           "ropescale_completion_tokens_total 12", "ropescale_queue_depth 2", "ropescale_sessions_busy 1",
                           "ropescale_sessions 4", "ropescale_kv_bytes_in_use 4096", "ropescale_kv_bytes_budget 1048576",
                           "ropescale_sessions_cancelled_total 3",
                           "ropescale_request_duration_seconds_bucket{le=\"0.05\"} 3",
                           "ropescale_request_duration_seconds_bucket{le=\"5\"} 4",
                           "ropescale_request_duration_seconds_bucket{le=\"+Inf\"} 4",
                           "ropescale_request_duration_seconds_count 4", "# TYPE ropescale_request_duration_seconds histogram"})
    EXPECT_NE(t.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << t;
}

}  // namespace
}  // namespace ropescale
