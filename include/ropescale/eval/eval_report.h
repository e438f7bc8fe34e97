// One evaluation run and its three renderings: the JSON contract other tools
// read, a terminal summary, and a self-contained HTML page (inline SVG, no
// scripts, no network) with the plots, tables and each method's exports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropescale/eval/effective_context.h"
#include "ropescale/eval/passkey.h"
#include "ropescale/eval/tasks.h"
#include "ropescale/eval/perplexity.h"

namespace ropescale {

// The KV cache one policy allocates for prompts of `tokens` tokens (session_cache_rows, kv_cache_bytes:
// the sessions' own count).
struct KvMemoryRow {
  std::string policy;  // kv_policy_label
  int64_t tokens = 0;
  int64_t rows = 0;    // cached tokens
  size_t bytes = 0;
};

struct EvalReport {
  std::string model_path;
  std::string endpoint;         // "URL (served model)" when the model was evaluated through an endpoint
  std::string input;            // the text or ids file ("" when perplexity was not run)
  int64_t input_tokens = 0;     // tokens in the input (before windowing)
  std::vector<RopeSetting> methods;  // resolved once (resolve_eval_methods); results join on them
  PerplexityOptions ppl_options;
  int64_t bucket = 0;           // NLL bucket width, positions
  std::vector<PerplexityResult> ppl;
  std::optional<PasskeyOptions> passkey_options;
  std::vector<PasskeyTrial> passkey;
  std::optional<TaskOptions> task_options;
  std::vector<TaskTrial> tasks;
  // Effective context: by accuracy (passkey exact, task score) and by needle NLL.
  EffectiveContextRule effective_accuracy{0.1, true, 0.5};
  EffectiveContextRule effective_nll{0.5, false, 0.0};  // the CLI bounds it by ln(vocabulary)
  // Local runs: per KV policy (one, or each --kv-policy) and length, the cache the sessions allocate.
  // With several policies each method label is "method · policy".
  std::vector<KvMemoryRow> kv_memory;
  std::string command;          // the command line that produced it
  double seconds = 0;
};

// One effective-context row: a method on a retrieval task ("passkey" or a task
// name) by one metric ("accuracy" or "needle_nll").
struct EffectiveContextRow {
  std::string method, task, metric;
  EffectiveContext result;
};
std::vector<EffectiveContextRow> effective_context_rows(const EvalReport& r, int64_t trained_context);

// The baseline for the short-context table: the method labelled "none", else
// the first whose override is plain RoPE; nullptr when there is none.
const RopeSetting* baseline_method(const EvalReport& r);

// {"model", "trained_context", "input", "protocol", "results": [{"method",
// "rope_scaling", "ctx", "windows", "tokens", "nll", "ppl", "buckets": [...]}],
// "short_context": [...], "passkey": {"options", "cells", "trials"},
// "tasks": {"options", "cells", "totals", "trials"}, "effective_context": [...]}.
nlohmann::json eval_json(const EvalReport& r, const LlamaModel& model);

// Plain-text tables for a terminal: perplexity by method × context, the
// short-context change against the baseline, passkey by method × length.
std::string eval_summary_text(const EvalReport& r, const LlamaModel& model);

// The HTML page.
std::string eval_report_html(const EvalReport& r, const LlamaModel& model);

}  // namespace ropescale
