// eval ppl | passkey | suite: perplexity against context length, passkey
// retrieval, and both in one report — several rope settings side by side.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "commands.h"
#include "output.h"
#include "progress.h"
#include "runtime_flags.h"
#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/eval/endpoint_eval.h"
#include "ropescale/eval/eval_report.h"
#include "ropescale/model/session.h"
#include "ropescale/model/tokenizer.h"

namespace ropescale::cli {

namespace {

struct EvalOptions {
  std::string model, tokenizer, text, ids, ctx = "512,1024,2048,4096", lengths, depths = "0,0.25,0.5,0.75,1";
  std::string haystack, json_path, report_path;
  RuntimeFlags runtime;
  std::vector<std::string> methods;
  int64_t stride = 0, tokens = 0, bucket = 0;
  int trials = 2, alternatives = 9;
  uint64_t seed = 1;
  bool quiet = false, window_bos = false;
  // A served model instead of the runtime.
  EndpointOptions endpoint;
  std::vector<std::string> endpoint_rope;
};

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
  return {o.runtime.chunk, o.runtime.threads, kv_cache_of(o.runtime), key_rotation_of(o.runtime)};
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

void write_output(const std::string& path, const std::string& content, const char* what) {
  if (path == "-") {
    std::fwrite(content.data(), 1, content.size(), stdout);
    return;
  }
  write_file(path, content, what);
  std::fprintf(stderr, "ropescale: wrote %s %s\n", what, path.c_str());
}

// The endpoint, connected; its failures become ConfigErrors naming the URL (exit 2).
std::unique_ptr<Endpoint> connect_endpoint(const EndpointOptions& o) {
  try {
    auto e = std::make_unique<Endpoint>(o);
    std::fprintf(stderr, "ropescale: endpoint %s serves '%s' (tokenizer route: %s, %zu special token(s) before a prompt%s)\n",
                 o.url.c_str(), e->model().c_str(), e->tokenizer_route().c_str(), e->prompt_prefix().size(),
                 e->max_model_len() ? fmt::format(", max_model_len {}", *e->max_model_len()).c_str() : "");
    return e;
  } catch (const EndpointError& x) {
    throw_unreadable("--endpoint", x.what());
  }
}

void run_eval(const EvalOptions& o, bool ppl, bool passkey) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool remote = !o.endpoint.url.empty();
  // Served elsewhere: the model file only describes it (its trained length, its rope facts).
  const LlamaModel model = remote ? describe_model(o.model) : load_model(o.model);
  const std::unique_ptr<Endpoint> endpoint = remote ? connect_endpoint(o.endpoint) : nullptr;
  const std::unique_ptr<Tokenizer> tok = remote ? std::make_unique<EndpointTokenizer>(*endpoint, model.hp.vocab_size)
                                                : tokenizer_for_model(model, o.model, o.tokenizer);
  if (remote && (o.window_bos || !o.tokenizer.empty()))
    throw_unreadable(o.window_bos ? "--window-bos" : "--tokenizer",
                     "does not apply to an endpoint (the server's tokenizer is used, and a BOS leads every window)");
  const int64_t L = model.hp.trained_context;
  EvalReport r;
  r.model_path = o.model;
  if (remote) r.endpoint = o.endpoint.url + " (" + endpoint->model() + ")";
  r.command = command_line();
  r.ppl_options.run = run_options(o);
  r.ppl_options.ctxs = parse_positive_ints(o.ctx, "--ctx");
  r.ppl_options.stride = o.stride;
  r.bucket = o.bucket > 0 ? o.bucket : std::max<int64_t>(8, L / 16);
  PasskeyOptions po;
  po.lengths = o.lengths.empty() ? r.ppl_options.ctxs : parse_positive_ints(o.lengths, "--lengths");
  int64_t longest = 0;
  for (int64_t c : (ppl ? r.ppl_options.ctxs : po.lengths)) longest = std::max(longest, c);
  // Each method resolved once, before any work: a bad setting fails here, naming its key. An
  // endpoint is evaluated as deployed ("model") unless settings are given to send with each request.
  std::vector<std::string> items = o.methods;
  items.insert(items.end(), o.endpoint_rope.begin(), o.endpoint_rope.end());
  r.methods = resolve_eval_methods(model, !items.empty() ? parse_eval_methods(items, L)
                                          : remote       ? std::vector<EvalMethod>{parse_eval_method("model", L)}
                                                         : default_eval_methods(L, longest));
  // The short-context table compares each method with plain RoPE; add it when that table will exist.
  const bool short_table = ppl && std::any_of(r.ppl_options.ctxs.begin(), r.ppl_options.ctxs.end(), [&](int64_t c) { return c <= L; });
  if (short_table && !baseline_method(r) && !remote) {
    r.methods.insert(r.methods.begin(), resolve_eval_methods(model, {parse_eval_method(std::string(rope_type_info(RopeType::Default).shorthand), L)})[0]);
    std::fprintf(stderr, "ropescale: added 'none' (plain RoPE) as the baseline of the short-context table\n");
  }

  if (ppl) {
    if (o.text.empty() == o.ids.empty()) throw_unreadable("--text/--ids", "give exactly one input: --text FILE or --ids FILE");
    std::vector<int> ids;
    if (!o.ids.empty()) {
      r.input = o.ids;
      ids = read_ids(o.ids, model.hp.vocab_size);
    } else {
      r.input = o.text;
      const std::string text = read_file_text(o.text);
      if (remote) {
        try {
          ids = tokenize_text(*endpoint, text, o.tokens);
        } catch (const EndpointError& x) {
          throw_unreadable("--endpoint", x.what());
        }
      } else {
        ids = tok->encode(text, !o.window_bos, false);  // with --window-bos each window gets its own BOS
      }
    }
    if (o.window_bos) r.ppl_options.bos_each_window = tok->bos();
    if (o.tokens > 0 && int64_t(ids.size()) > o.tokens) ids.resize(o.tokens);
    r.input_tokens = int64_t(ids.size());
    for (int64_t c : r.ppl_options.ctxs)
      if (c > int64_t(ids.size()))
        throw_unreadable(r.input, fmt::format("has {} tokens{}, fewer than one window of --ctx {}", ids.size(),
                                              o.tokens > 0 ? " (after --tokens)" : "", c));
    if (o.stride > 0)
      for (int64_t c : r.ppl_options.ctxs)
        if (o.stride >= c)
          throw_unreadable("--stride", fmt::format("{} is not shorter than --ctx {} (0 = non-overlapping windows)", o.stride, c));
    std::fprintf(stderr, "ropescale: perplexity of %zu methods at %zu context lengths on %zu tokens of %s\n",
                 r.methods.size(), r.ppl_options.ctxs.size(), ids.size(), r.input.c_str());
    ProgressBar bar("perplexity", "tok");
    const EvalProgress progress = [&](int64_t done, int64_t total) { bar.update(done, total); };
    try {
      r.ppl = remote ? evaluate_perplexity_endpoint(*endpoint, ids, r.methods, r.ppl_options, progress)
                     : evaluate_perplexity(model, ids, r.methods, r.ppl_options, progress);
    } catch (const EndpointError& x) {
      throw_unreadable("--endpoint", x.what());
    }
    if (remote && endpoint->prompt_prefix().size() == 1) r.ppl_options.bos_each_window = endpoint->prompt_prefix()[0];
  }
  if (passkey) {
    po.depths = parse_depths(o.depths);
    po.trials = o.trials;
    po.seed = o.seed;
    po.alternatives = o.alternatives;
    po.run = r.ppl_options.run;
    if (!o.haystack.empty()) po.haystack = read_file_text(o.haystack);
    std::vector<PasskeyPrompt> prompts;
    try {
      prompts = build_passkey_prompts(*tok, po);
    } catch (const std::invalid_argument& e) {
      throw_unreadable("--lengths", e.what());
    } catch (const EndpointError& x) {
      throw_unreadable("--endpoint", x.what());
    }
    std::fprintf(stderr, "ropescale: passkey, %zu methods × %zu prompts (%zu lengths × %zu depths × %d trials)\n",
                 r.methods.size(), prompts.size(), po.lengths.size(), po.depths.size(), po.trials);
    ProgressBar bar("passkey", "tok");
    const EvalProgress progress = [&](int64_t done, int64_t total) { bar.update(done, total); };
    try {
      r.passkey = remote ? evaluate_passkey_endpoint(*endpoint, r.methods, prompts, progress)
                         : evaluate_passkey(model, *tok, r.methods, prompts, po, progress);
    } catch (const EndpointError& x) {
      throw_unreadable("--endpoint", x.what());
    }
    r.passkey_options = po;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.quiet && o.json_path != "-") std::fputs(eval_summary_text(r, model).c_str(), stdout);
  if (!o.json_path.empty()) write_output(o.json_path, safe_dump(eval_json(r, model), 2) + "\n", "JSON results");
  if (!o.report_path.empty()) write_output(o.report_path, eval_report_html(r, model), "HTML report");
}

void add_common(CLI::App* c, EvalOptions& o) {
  c->add_option("--model", o.model,
                 "Model file (llama2.c, GGUF) or HF directory; with --endpoint, the served model's config (config.json, "
                 "its directory or GGUF): its trained length and rope facts, weights not loaded")
      ->required();
  c->add_option("--tokenizer", o.tokenizer, "Tokenizer (default: the model's own or beside it)");
  c->add_option("--methods", o.methods,
                "Rope settings to compare: shorthands " + eval_method_shorthands() +
                    " (comma-separated or repeated), or JSON objects. Default: none, linear/ntk/yarn at 2×, 4×, … up to "
                    "the longest length, dynamic, dynamic_yarn");
  c->add_option("--json", o.json_path, "Write all results as JSON to FILE ('-' = stdout)");
  c->add_option("--report", o.report_path, "Write a self-contained HTML report to FILE");
  add_runtime_flags(c, o.runtime, {.rotation_auto = true});
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
                "ropescale serve applies it; for a fixed-config engine it labels the deployment")
      ->take_all();
  g->add_option("--concurrency", o.endpoint.concurrency, "Requests in flight at once")->capture_default_str()
      ->check(CLI::Range(1, 256));
  g->add_option("--timeout", o.endpoint.timeout_s, "Per-request timeout, seconds")->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  g->add_option("--retries", o.endpoint.retries, "Retries of a 429/502/503/504 or dropped connection, with backoff")
      ->capture_default_str()->check(CLI::Range(0, 20));
}

void add_ppl(CLI::App* c, EvalOptions& o) {
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

void add_passkey(CLI::App* c, EvalOptions& o, bool own_lengths_default) {
  c->add_option("--lengths", o.lengths,
                own_lengths_default ? "Comma-separated prompt lengths in tokens" : "Passkey prompt lengths (default: --ctx)")
      ->capture_default_str();
  c->add_option("--depths", o.depths, "Comma-separated needle depths, 0 (start) … 1 (end)")->capture_default_str();
  c->add_option("--trials", o.trials, "Prompts (random keys) per length × depth")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--seed", o.seed, "Seed of the keys")->capture_default_str();
  c->add_option("--alternatives", o.alternatives, "Random keys the true key is ranked against")
      ->capture_default_str()->check(CLI::Range(1, 999));
  c->add_option("--haystack", o.haystack, "Filler text file (default: the classic repeated sentences)");
}

}  // namespace

void add_eval_commands(CLI::App& app, int& exit_code) {
  auto* ev = app.add_subcommand("eval", "Evaluate rope settings side by side: perplexity against length, passkey retrieval");
  ev->require_subcommand(1);
  {
    auto o = std::make_shared<EvalOptions>();
    auto* c = ev->add_subcommand("ppl", "Perplexity and NLL by position at several context lengths, for several methods in one run");
    add_common(c, *o);
    add_ppl(c, *o);
    c->callback([o, &exit_code] { run_eval(*o, true, false), exit_code = 0; });
  }
  {
    auto o = std::make_shared<EvalOptions>();
    auto* c = ev->add_subcommand("passkey", "Passkey retrieval over lengths × depths × trials: exact greedy and log-prob rank");
    add_common(c, *o);
    o->lengths = o->ctx;
    add_passkey(c, *o, true);
    c->callback([o, &exit_code] { run_eval(*o, false, true), exit_code = 0; });
  }
  {
    auto o = std::make_shared<EvalOptions>();
    auto* c = ev->add_subcommand("suite", "Perplexity and passkey in one run and one report (the golden test before and after a change)");
    add_common(c, *o);
    add_ppl(c, *o);
    add_passkey(c, *o, false);
    c->callback([o, &exit_code] { run_eval(*o, true, true), exit_code = 0; });
  }
}

}  // namespace ropescale::cli
