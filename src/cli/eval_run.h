// The evaluation suite as the CLI runs it — `eval ppl | passkey | tasks | suite`
// and `golden record | compare` share it: the options (and their JSON form, which
// a golden file stores so the same set can be re-run), one run on the runtime or
// an endpoint, and the outputs.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "runtime_flags.h"
#include "ropescale/eval/endpoint.h"
#include "ropescale/eval/eval_report.h"

namespace ropescale::cli {

struct EvalOptions {
  std::string model, tokenizer, text, ids, ctx = "512,1024,2048,4096", lengths, depths = "0,0.25,0.5,0.75,1";
  std::string haystack, json_path, report_path, tasks, task_wording = "ruler";
  RuntimeFlags runtime;
  std::vector<std::string> methods;
  // --kv-policy: each runs every part once more under these KV flags over `runtime`'s; one report.
  std::vector<std::string> kv_policies;
  int64_t stride = 0, tokens = 0, bucket = 0;
  int trials = 2, alternatives = 9, kv_records = 4;
  uint64_t seed = 1;
  double effective_threshold = 0.1, effective_nll = 0.5;
  bool quiet = false, window_bos = false;
  // A served model instead of the runtime.
  EndpointOptions endpoint;
  std::vector<std::string> endpoint_rope;
};

struct EvalParts {
  bool ppl = false, passkey = false, tasks = false;
};

// Registers the options of `parts` on `c` (every eval command has the common ones).
void add_eval_options(CLI::App* c, EvalOptions& o, EvalParts parts, bool lengths_default_to_ctx);

struct EvalRun {
  LlamaModel model;  // loaded, or (endpoint) described by its config
  EvalReport report;
};
// Runs the parts; errors are ConfigErrors naming the flag, file or URL.
EvalRun run_evaluation(const EvalOptions& o, EvalParts parts);
// The summary on stdout (unless --quiet or JSON to stdout), --json, --report.
void write_evaluation(const EvalOptions& o, const EvalRun& run);

// What re-creates a run: every option but the outputs and the API key, and the
// SHA-256 of the text and haystack files it read.
nlohmann::json eval_options_json(const EvalOptions& o, EvalParts parts);
EvalOptions eval_options_from_json(const nlohmann::json& j, EvalParts& parts);
std::string file_sha256(const std::string& path);

void write_output(const std::string& path, const std::string& content, const char* what);

// One --kv-policy: "q8_0", "f32,kv-budget-tokens=256,kv-protect=REGEX", "kv-window=192,kv-sinks=4":
// an optional cache type, then runtime flags as name=value (a regex for kv-protect takes the rest of
// the text, commas included), applied over `base` with the checks the flags have.
RuntimeFlags kv_policy_flags(const RuntimeFlags& base, const std::string& spec);

}  // namespace ropescale::cli
