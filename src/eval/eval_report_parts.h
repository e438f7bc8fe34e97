// Internal to the evaluation report: the joins and formats that the JSON
// contract (eval_report.cpp), the terminal tables and the HTML page
// (eval_report_html.cpp) share.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropescale/eval/eval_report.h"

namespace ropescale::report {

// The result of `method` at `ctx` (joined by the setting itself), or nullptr.
const PerplexityResult* find_ppl(const EvalReport& r, const RopeSetting& method, int64_t ctx);
// The report's context lengths within the model's trained context.
std::vector<int64_t> short_contexts(const EvalReport& r, const LlamaModel& m);

// A line style per method: a colour per family (the registry row's), a dash per factor.
struct Style {
  std::string color, dash;
};
Style method_style(const RopeSetting& m);

std::string fixed(double v, int digits);
std::string kv_name(KvType k);
std::string rotation_name(const std::optional<KeyRotation>& k);
// The setting exported to HF, vLLM and llama.cpp at `target_context` ({"error"} when it cannot be).
nlohmann::json method_exports(const RopeSetting& m, int64_t target_context);
// One method at one length, over every depth.
PasskeyCell passkey_total(const std::vector<PasskeyCell>& cells, const std::string& method, int64_t length);
double percent_change(double x, double base);

// The KV memory table: its policies in run order, its lengths ascending, and the cell (nullptr: none).
struct KvMemoryTable {
  std::vector<std::string> policies;
  std::vector<int64_t> lengths;
  const KvMemoryRow* find(const EvalReport& r, const std::string& policy, int64_t tokens) const;
};
KvMemoryTable kv_memory_table(const EvalReport& r);

}  // namespace ropescale::report
