// The evaluation run the eval and golden commands share (see eval_run.h).
#include "eval_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <fmt/core.h>

#include "commands.h"
#include "output.h"
#include "progress.h"
#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/config/sha256.h"
#include "ropescale/eval/endpoint_eval.h"
#include "ropescale/eval/eval_target.h"
#include "ropescale/model/session.h"
#include "ropescale/model/tokenizer.h"

namespace ropescale::cli {

using nlohmann::json;

namespace {

// Whitespace-separated token ids; errors name the file, the item and its index.
std::vector<int> read_ids(const std::string& path, int vocab) {
  std::stringstream ss(read_file_text(path));
  std::vector<int> ids;
  for (std::string item; ss >> item;) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v >= vocab)
      throw_unreadable(path, fmt::format("item {} ('{}') is not a token id of this model (0 … {})", ids.size(), item, vocab - 1));
    ids.push_back(static_cast<int>(v));
  }
  if (ids.empty()) throw_unreadable(path, "holds no token ids");
  return ids;
}

RunOptions run_options(const EvalOptions& o) {
  return run_options_of(o.runtime);
}

std::vector<double> parse_depths(const std::string& text) {
  return parse_list<double>(
      text, "--depths",
      [](const std::string& item) {
        size_t used = 0;
        const double d = std::stod(item, &used);
        if (used != item.size() || !(d >= 0 && d <= 1)) throw std::out_of_range(item);
        return d;
      },
      "a depth between 0 and 1");
}

std::vector<TaskKind> parse_tasks(const std::string& text) {
  if (text == "all") {
    std::vector<TaskKind> all;
    for (const auto& t : task_infos()) all.push_back(t.kind);
    return all;
  }
  return parse_list<TaskKind>(
      text, "--tasks",
      [](const std::string& item) {
        const auto k = parse_task(item);
        if (!k) throw std::invalid_argument(item);
        return *k;
      },
      "a task (" + task_names() + ", or all)");
}

// The endpoint, connected; its failures become ConfigErrors naming the URL (exit 2).
std::unique_ptr<Endpoint> connect_endpoint(const EndpointOptions& o) {
  auto e = std::make_unique<Endpoint>(o);
  std::fprintf(stderr, "ropescale: endpoint %s serves '%s' (tokenizer route: %s, %zu special token(s) before a prompt%s)\n",
               o.url.c_str(), e->model().c_str(), e->tokenizer_route().c_str(), e->prompt_prefix().size(),
               e->max_model_len() ? fmt::format(", max_model_len {}", *e->max_model_len()).c_str() : "");
  return e;
}

EvalRun run_parts(const EvalOptions& o, EvalParts parts) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool remote = !o.endpoint.url.empty();
  if (remote && (o.window_bos || !o.tokenizer.empty()))
    throw_unreadable(o.window_bos ? "--window-bos" : "--tokenizer",
                     "does not apply to an endpoint (the server's tokenizer is used, and a BOS leads every window)");
  EvalRun run;
  // Served elsewhere: the model file only describes the model (its trained length, its rope facts).
  run.model = remote ? describe_model(o.model, gguf_rope_source()) : load_model(o.model);
  const LlamaModel& model = run.model;
  std::unique_ptr<Endpoint> endpoint;
  std::unique_ptr<Tokenizer> local_tok;
  std::unique_ptr<EvalTarget> target;
  if (remote) {
    endpoint = connect_endpoint(o.endpoint);
    target = std::make_unique<EndpointTarget>(*endpoint, model.hp.vocab_size);
  } else {
    local_tok = tokenizer_for_model(model, o.model, o.tokenizer);
    target = std::make_unique<LocalTarget>(model, *local_tok, run_options(o));
  }
  const Tokenizer& tok = target->tokenizer();
  const int64_t L = model.hp.trained_context;
  EvalReport& r = run.report;
  r.model_path = o.model;
  if (remote) r.endpoint = target->describe();
  r.command = command_line();
  r.effective_accuracy.threshold = o.effective_threshold;
  r.effective_nll.threshold = o.effective_nll;
  r.effective_nll.reference_bound = std::log(double(std::max(2, model.hp.vocab_size)));  // a uniform guess
  r.ppl_options.run = run_options(o);
  r.ppl_options.ctxs = parse_positive_ints(o.ctx, "--ctx");
  r.ppl_options.stride = o.stride;
  r.bucket = o.bucket > 0 ? o.bucket : std::max<int64_t>(8, L / 16);
  const std::vector<int64_t> lengths = o.lengths.empty() ? r.ppl_options.ctxs : parse_positive_ints(o.lengths, "--lengths");
  int64_t longest = 0;
  for (int64_t c : (parts.ppl ? r.ppl_options.ctxs : lengths)) longest = std::max(longest, c);
  // Each method resolved once, before any work: a bad setting fails here, naming its key. An
  // endpoint is evaluated as deployed ("model") unless settings are given to send with each request.
  std::vector<std::string> items = o.methods;
  items.insert(items.end(), o.endpoint_rope.begin(), o.endpoint_rope.end());
  r.methods = resolve_eval_methods(model, !items.empty() ? parse_eval_methods(items, L)
                                          : remote       ? std::vector<EvalMethod>{parse_eval_method("model", L)}
                                                         : default_eval_methods(L, longest));
  // The short-context table compares each method with plain RoPE; add it when that table will exist.
  const bool short_table =
      parts.ppl && std::any_of(r.ppl_options.ctxs.begin(), r.ppl_options.ctxs.end(), [&](int64_t c) { return c <= L; });
  if (short_table && !baseline_method(r) && !remote) {
    r.methods.insert(r.methods.begin(), resolve_eval_methods(model, {parse_eval_method(std::string(rope_type_info(RopeType::Default).shorthand), L)})[0]);
    std::fprintf(stderr, "ropescale: added 'none' (plain RoPE) as the baseline of the short-context table\n");
  }

  if (!remote) {  // the cache each length's sessions allocate under this policy
    std::vector<int64_t> all = parts.ppl ? r.ppl_options.ctxs : std::vector<int64_t>{};
    if (parts.passkey || parts.tasks) all.insert(all.end(), lengths.begin(), lengths.end());
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    for (int64_t n : all) {
      const int64_t rows = session_cache_rows(session_options_for(r.methods.at(0), r.ppl_options.run, n), L);
      r.kv_memory.push_back({kv_policy_label(r.ppl_options.run), n, rows,
                             kv_cache_bytes(r.ppl_options.run.kv_cache, model.hp.n_layers, model.hp.n_kv_heads, model.hp.head_dim, rows)});
    }
  }

  if (parts.ppl) {
    if (o.text.empty() == o.ids.empty()) throw_unreadable("--text/--ids", "give exactly one input: --text FILE or --ids FILE");
    std::vector<int> ids;
    if (!o.ids.empty()) {
      r.input = o.ids;
      ids = read_ids(o.ids, model.hp.vocab_size);
    } else {
      r.input = o.text;
      const std::string text = read_file_text(o.text);
      // With --window-bos (and on an endpoint) each window gets its own BOS, so the stream has none.
      ids = remote ? tokenize_text(*endpoint, text, o.tokens) : tok.encode(text, !o.window_bos, false);
    }
    if (o.window_bos) r.ppl_options.bos_each_window = tok.bos();
    if (remote && endpoint->prompt_prefix().size() == 1) r.ppl_options.bos_each_window = endpoint->prompt_prefix()[0];
    if (o.tokens > 0 && int64_t(ids.size()) > o.tokens) ids.resize(o.tokens);
    r.input_tokens = int64_t(ids.size());
    for (int64_t c : r.ppl_options.ctxs)
      if (c > int64_t(ids.size()))
        throw_unreadable(r.input, fmt::format("has {} tokens{}, fewer than one window of --ctx {}", ids.size(),
                                              o.tokens > 0 ? " (after --tokens)" : "", c));
    if (o.stride > 0)
      for (int64_t c : r.ppl_options.ctxs)
        if (o.stride >= c - (r.ppl_options.bos_each_window ? 1 : 0))
          throw_unreadable("--stride", fmt::format("{} is not shorter than --ctx {} (0 = non-overlapping windows)", o.stride, c));
    std::fprintf(stderr, "ropescale: perplexity of %zu methods at %zu context lengths on %zu tokens of %s\n",
                 r.methods.size(), r.ppl_options.ctxs.size(), ids.size(), r.input.c_str());
    ProgressBar bar("perplexity", "tok");
    r.ppl = target->perplexity(ids, r.methods, r.ppl_options, [&](int64_t done, int64_t total) { bar.update(done, total); });
  }
  const std::string haystack = o.haystack.empty() ? "" : read_file_text(o.haystack);
  if (parts.passkey) {
    PasskeyOptions po;
    po.lengths = lengths;
    po.depths = parse_depths(o.depths);
    po.trials = o.trials;
    po.seed = o.seed;
    po.alternatives = o.alternatives;
    po.haystack = haystack;
    std::vector<PasskeyPrompt> prompts;
    try {
      prompts = build_passkey_prompts(tok, po);
    } catch (const std::invalid_argument& e) {
      throw_unreadable("--lengths", e.what());
    }
    std::fprintf(stderr, "ropescale: passkey, %zu methods × %zu prompts (%zu lengths × %zu depths × %d trials)\n",
                 r.methods.size(), prompts.size(), po.lengths.size(), po.depths.size(), po.trials);
    ProgressBar bar("passkey", "tok");
    r.passkey = evaluate_passkey(*target, r.methods, prompts, [&](int64_t done, int64_t total) { bar.update(done, total); });
    r.passkey_options = po;
  }
  if (parts.tasks) {
    TaskOptions to;
    to.tasks = parse_tasks(o.tasks);
    to.lengths = lengths;
    to.depths = parse_depths(o.depths);
    to.trials = o.trials;
    to.seed = o.seed;
    to.haystack = haystack;
    to.kv_records = o.kv_records;
    const auto wording = parse_task_wording(o.task_wording);
    if (!wording) throw_unreadable("--task-wording", "'" + o.task_wording + "' is not ruler or compact");
    to.wording = *wording;
    std::vector<TaskSample> samples;
    try {
      samples = build_task_samples(tok, to);
    } catch (const std::invalid_argument& e) {
      throw_unreadable("--lengths", e.what());
    }
    std::fprintf(stderr, "ropescale: tasks, %zu methods × %zu samples (%zu tasks × %zu lengths × %zu depths × %d trials)\n",
                 r.methods.size(), samples.size(), to.tasks.size(), to.lengths.size(), to.depths.size(), to.trials);
    ProgressBar bar("tasks", "tok");
    r.tasks = evaluate_tasks(*target, r.methods, samples, [&](int64_t done, int64_t total) { bar.update(done, total); });
    r.task_options = to;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return run;
}

}  // namespace

void write_output(const std::string& path, const std::string& content, const char* what) {
  if (path == "-") {
    std::fwrite(content.data(), 1, content.size(), stdout);
    return;
  }
  write_file(path, content, what);
  std::fprintf(stderr, "ropescale: wrote %s %s\n", what, path.c_str());
}

RuntimeFlags kv_policy_flags(const RuntimeFlags& base, const std::string& spec) {
  CLI::App app("--kv-policy");
  RuntimeFlags f = base;
  add_runtime_flags(&app, f, {.key_rotation = false, .chunk = false, .threads = false});
  std::vector<std::string> args;
  for (size_t at = 0; at <= spec.size();) {
    size_t end = spec.find(',', at);
    std::string item = spec.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (item.rfind("kv-protect=", 0) == 0) item = spec.substr(at), end = std::string::npos;  // the regex: the rest
    const size_t eq = item.find('=');
    if (eq == std::string::npos && at == 0 && !item.empty()) {
      args.insert(args.end(), {"--kv-cache", item});  // a bare first item: the cache type
    } else if (eq == std::string::npos || eq == 0) {
      throw_unreadable("--kv-policy", "'" + spec + "': '" + item + "' is not name=value (e.g. kv-budget-tokens=256)");
    } else {
      args.insert(args.end(), {"--" + item.substr(0, eq), item.substr(eq + 1)});
    }
    if (end == std::string::npos) break;
    at = end + 1;
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    throw_unreadable("--kv-policy", "'" + spec + "': " + e.what());
  }
  SessionOptions checked;
  apply_kv_flags(f, checked);  // the combinations, as the flags themselves are checked
  return f;
}

EvalRun run_evaluation(const EvalOptions& o, EvalParts parts) {
  try {
    if (o.kv_policies.empty()) return run_parts(o, parts);
    if (!o.endpoint.url.empty()) throw_unreadable("--kv-policy", "a KV policy is the runtime's; an endpoint keeps its own cache");
    // Every policy checked before any work; then each run, its methods labelled "method · policy", in one report.
    std::vector<EvalOptions> runs;
    for (const auto& spec : o.kv_policies) {
      EvalOptions po = o;
      po.kv_policies.clear();
      po.runtime = kv_policy_flags(o.runtime, spec);
      runs.push_back(std::move(po));
    }
    EvalRun merged;
    for (size_t i = 0; i < runs.size(); ++i) {
      const std::string policy = kv_policy_label(run_options_of(runs[i].runtime));
      std::fprintf(stderr, "ropescale: KV policy %zu of %zu: %s\n", i + 1, runs.size(), policy.c_str());
      EvalRun one = run_parts(runs[i], parts);
      EvalReport& r = one.report;
      const auto pair = [&](std::string& label) { label += " · " + policy; };
      for (auto& m : r.methods) pair(m.label);
      for (auto& x : r.ppl) pair(x.setting.label);
      for (auto& x : r.passkey) pair(x.method);
      for (auto& x : r.tasks) pair(x.method);
      if (i == 0) {
        merged = std::move(one);
        continue;
      }
      EvalReport& m = merged.report;
      m.methods.insert(m.methods.end(), r.methods.begin(), r.methods.end());
      m.ppl.insert(m.ppl.end(), r.ppl.begin(), r.ppl.end());
      m.passkey.insert(m.passkey.end(), r.passkey.begin(), r.passkey.end());
      m.tasks.insert(m.tasks.end(), r.tasks.begin(), r.tasks.end());
      m.kv_memory.insert(m.kv_memory.end(), r.kv_memory.begin(), r.kv_memory.end());
      m.seconds += r.seconds;
    }
    return merged;
  } catch (const EndpointError& e) {
    throw_unreadable("--endpoint", e.what());
  }
}

void write_evaluation(const EvalOptions& o, const EvalRun& run) {
  if (!o.quiet && o.json_path != "-") std::fputs(eval_summary_text(run.report, run.model).c_str(), stdout);
  if (!o.json_path.empty()) write_output(o.json_path, safe_dump(eval_json(run.report, run.model), 2) + "\n", "JSON results");
  if (!o.report_path.empty()) write_output(o.report_path, eval_report_html(run.report, run.model), "HTML report");
}

void add_eval_options(CLI::App* c, EvalOptions& o, EvalParts parts, bool lengths_default_to_ctx) {
  c->add_option("--model", o.model,
                "Model file (llama2.c, GGUF) or HF directory; with --endpoint, the served model's config (config.json, "
                "its directory or GGUF): its trained length and rope facts, weights not loaded")
      ->required();
  c->add_option("--tokenizer", o.tokenizer, "Tokenizer (default: the model's own or beside it)");
  c->add_option("--methods", o.methods,
                "Rope settings to compare: shorthands " + eval_method_shorthands() +
                    " (comma-separated or repeated), or JSON objects. Default: none, linear/ntk/yarn at 2×, 4×, … up to "
                    "the longest length, dynamic, dynamic_yarn (with --endpoint: the deployment's own)");
  c->add_option("--json", o.json_path, "Write all results as JSON to FILE ('-' = stdout)");
  c->add_option("--report", o.report_path, "Write a self-contained HTML report to FILE");
  add_runtime_flags(c, o.runtime, {.rotation_auto = true});
  c->add_option("--kv-policy", o.kv_policies,
                "Compare KV policies in one run and one report: each (repeat the flag) runs every method and part once "
                "more, labelled 'method · policy'. A policy is an optional cache type then runtime flags as name=value, "
                "over the flags above: q8_0 | f32,kv-window=192,kv-sinks=4 | kv-budget-tokens=256,kv-protect=REGEX | "
                "self-extend-group=16,self-extend-window=128")
      ->take_all();
  c->add_flag("--quiet", o.quiet, "No summary table on stdout");
  auto* g = c->add_option_group("endpoint", "Evaluate a model served by an OpenAI-compatible server (vLLM, "
                                            "llama-cpp-python, ropescale serve) instead of running it here");
  g->add_option("--endpoint", o.endpoint.url,
                "Base URL, e.g. http://127.0.0.1:8000 (or …/v1). Needs /v1/completions with echo + logprobs and a "
                "tokenizer route (/tokenize or /extras/tokenize)");
  g->add_option("--api-key", o.endpoint.api_key, "Bearer token for the endpoint (default: $OPENAI_API_KEY)")
      ->envname("OPENAI_API_KEY");
  g->add_option("--served-model", o.endpoint.served_model, "The model name to request (default: the first of /v1/models)");
  g->add_option("--endpoint-rope", o.endpoint_rope,
                "A rope setting sent with every request as rope_scaling (JSON or a shorthand; repeat for several): "
                "ropescale serve applies it; for a fixed-config engine it labels the deployment");
  g->add_option("--concurrency", o.endpoint.concurrency, "Requests in flight at once")->capture_default_str()
      ->check(CLI::Range(1, 256));
  g->add_option("--timeout", o.endpoint.timeout_s, "Per-request timeout, seconds")->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  g->add_option("--retries", o.endpoint.retries, "Retries of a 429/502/503/504 or dropped connection, with backoff")
      ->capture_default_str()->check(CLI::Range(0, 20));
  if (parts.ppl) {
    c->add_option("--text", o.text, "Text file, tokenized with the model's tokenizer (one stream, BOS first)");
    c->add_option("--ids", o.ids, "Pre-tokenized input: a file of whitespace-separated token ids");
    c->add_option("--ctx", o.ctx, "Comma-separated context lengths (window sizes)")->capture_default_str();
    c->add_option("--stride", o.stride, "Sliding windows every S tokens, scoring each token once (0 = non-overlapping)")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    c->add_option("--tokens", o.tokens, "Use only the first N tokens of the input (0 = all)")->check(CLI::NonNegativeNumber);
    c->add_flag("--window-bos", o.window_bos,
                "Every window is BOS + ctx − 1 tokens, as a served prompt is: the protocol of --endpoint, to compare with it");
    c->add_option("--bucket", o.bucket, "Width of the NLL-by-position buckets (default: trained context / 16, at least 8)")
        ->check(CLI::NonNegativeNumber);
  }
  if (parts.passkey || parts.tasks) {
    c->add_option("--lengths", o.lengths,
                  lengths_default_to_ctx ? "Prompt lengths in tokens (default: --ctx)" : "Comma-separated prompt lengths in tokens")
        ->capture_default_str();
    c->add_option("--depths", o.depths, "Comma-separated needle depths, 0 (start) … 1 (end)")->capture_default_str();
    c->add_option("--trials", o.trials, "Prompts (random keys) per length × depth")->capture_default_str()->check(CLI::PositiveNumber);
    c->add_option("--seed", o.seed, "Seed of the keys and needles")->capture_default_str();
    c->add_option("--haystack", o.haystack, "Filler text file (default: the classic repeated sentences, RULER's noise)");
    c->add_option("--effective-threshold", o.effective_threshold,
                  "Effective context: the largest drop of accuracy (0 … 1) from the trained length's")
        ->capture_default_str()->check(CLI::Range(0.0, 1.0));
    c->add_option("--effective-nll", o.effective_nll, "Effective context: the largest rise of needle NLL (nats / token)")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
  }
  if (parts.passkey)
    c->add_option("--alternatives", o.alternatives, "Random keys the true key is ranked against")
        ->capture_default_str()->check(CLI::Range(1, 999));
  if (parts.tasks) {
    c->add_option("--tasks", o.tasks, "Comma-separated tasks: " + task_names() + ", or all")->capture_default_str();
    c->add_option("--kv-records", o.kv_records, "kv task: records in the haystack")->capture_default_str()->check(CLI::Range(2, 20));
    c->add_option("--task-wording", o.task_wording,
                  "ruler (RULER's templates, as published scores use) or compact (short: every task fits 256 tokens)")
        ->capture_default_str();
  }
}

std::string file_sha256(const std::string& path) { return path.empty() ? "" : file_sha256_hex(path); }

json eval_options_json(const EvalOptions& o, EvalParts parts) {
  json j = {{"parts", {{"ppl", parts.ppl}, {"passkey", parts.passkey}, {"tasks", parts.tasks}}},
            {"model", o.model},
            {"tokenizer", o.tokenizer},
            {"methods", o.methods},
            {"runtime", {{"kv_cache", o.runtime.kv_cache}, {"kv_window", o.runtime.kv_window}, {"kv_sinks", o.runtime.kv_sinks},
                         {"self_extend_group", o.runtime.self_extend_group}, {"self_extend_window", o.runtime.self_extend_window},
                         {"kv_budget", o.runtime.kv_budget}, {"kv_protect", o.runtime.kv_protect},
                         {"kv_policies", o.kv_policies},
                         {"key_rotation", o.runtime.key_rotation}, {"chunk", o.runtime.chunk}}},
            {"text", o.text},
            {"text_sha256", file_sha256(o.text)},
            {"ids", o.ids},
            {"ids_sha256", file_sha256(o.ids)},
            {"ctx", o.ctx},
            {"stride", o.stride},
            {"tokens", o.tokens},
            {"window_bos", o.window_bos},
            {"bucket", o.bucket},
            {"lengths", o.lengths},
            {"depths", o.depths},
            {"trials", o.trials},
            {"seed", o.seed},
            {"alternatives", o.alternatives},
            {"haystack", o.haystack},
            {"haystack_sha256", file_sha256(o.haystack)},
            {"tasks", o.tasks},
            {"kv_records", o.kv_records},
            {"task_wording", o.task_wording},
            {"effective_threshold", o.effective_threshold},
            {"effective_nll", o.effective_nll}};
  if (!o.endpoint.url.empty())
    j["endpoint"] = {{"url", o.endpoint.url},
                     {"served_model", o.endpoint.served_model},
                     {"endpoint_rope", o.endpoint_rope},
                     {"concurrency", o.endpoint.concurrency},
                     {"timeout", o.endpoint.timeout_s},
                     {"retries", o.endpoint.retries}};
  return j;
}

EvalOptions eval_options_from_json(const json& j, EvalParts& parts) {
  EvalOptions o;
  try {
    parts.ppl = j.at("parts").at("ppl").get<bool>();
    parts.passkey = j.at("parts").at("passkey").get<bool>();
    parts.tasks = j.at("parts").at("tasks").get<bool>();
    o.model = j.at("model").get<std::string>();
    o.tokenizer = j.at("tokenizer").get<std::string>();
    o.methods = j.at("methods").get<std::vector<std::string>>();
    const json& rt = j.at("runtime");
    o.runtime.kv_cache = rt.at("kv_cache").get<std::string>();
    o.runtime.kv_window = rt.value("kv_window", int64_t{0});  // golden sets recorded before windows keep every token
    o.runtime.kv_sinks = rt.value("kv_sinks", int64_t{0});
    o.runtime.self_extend_group = rt.value("self_extend_group", int64_t{1});
    o.runtime.self_extend_window = rt.value("self_extend_window", int64_t{0});
    o.runtime.kv_budget = rt.value("kv_budget", int64_t{0});
    o.runtime.kv_protect = rt.value("kv_protect", std::string());
    o.kv_policies = rt.value("kv_policies", std::vector<std::string>{});
    o.runtime.key_rotation = rt.at("key_rotation").get<std::string>();
    o.runtime.chunk = rt.at("chunk").get<int>();
    o.text = j.at("text").get<std::string>();
    o.ids = j.at("ids").get<std::string>();
    o.ctx = j.at("ctx").get<std::string>();
    o.stride = j.at("stride").get<int64_t>();
    o.tokens = j.at("tokens").get<int64_t>();
    o.window_bos = j.at("window_bos").get<bool>();
    o.bucket = j.at("bucket").get<int64_t>();
    o.lengths = j.at("lengths").get<std::string>();
    o.depths = j.at("depths").get<std::string>();
    o.trials = j.at("trials").get<int>();
    o.seed = j.at("seed").get<uint64_t>();
    o.alternatives = j.at("alternatives").get<int>();
    o.haystack = j.at("haystack").get<std::string>();
    o.tasks = j.at("tasks").get<std::string>();
    o.kv_records = j.at("kv_records").get<int>();
    o.task_wording = j.at("task_wording").get<std::string>();
    o.effective_threshold = j.at("effective_threshold").get<double>();
    o.effective_nll = j.at("effective_nll").get<double>();
    if (j.contains("endpoint")) {
      const json& e = j["endpoint"];
      o.endpoint.url = e.at("url").get<std::string>();
      o.endpoint.served_model = e.at("served_model").get<std::string>();
      o.endpoint_rope = e.at("endpoint_rope").get<std::vector<std::string>>();
      o.endpoint.concurrency = e.at("concurrency").get<int>();
      o.endpoint.timeout_s = e.at("timeout").get<double>();
      o.endpoint.retries = e.at("retries").get<int>();
    }
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("options: ") + e.what());
  }
  return o;
}

}  // namespace ropescale::cli
