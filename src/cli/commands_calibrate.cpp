// calibrate: search a scaling for one model at one target length on the user's
// text (YaRN's ramp and attention factor; LongRoPE's per-pair search is not yet
// built), report it against YaRN as published on held-out text, and write the
// setting with its exports for HF, vLLM and llama.cpp.
#include <chrono>
#include <cmath>
#include <cstdio>

#include <fmt/core.h>

#include "commands.h"
#include "eval_run.h"
#include "output.h"
#include "progress.h"
#include "runtime_flags.h"
#include "ropescale/advice/export.h"
#include "ropescale/calibrate/yarn_calibration.h"
#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/config/sha256.h"
#include "ropescale/eval/perplexity.h"
#include "ropescale/model/tokenizer.h"

namespace ropescale::cli {

using nlohmann::json;

namespace {

struct CalibrateOptions {
  std::string model, tokenizer, text, eval_text, method = "yarn", out;
  int64_t target = 0;
  int windows = 2, eval_windows = 4, max_evals = 400;
  double max_minutes = 3;
  bool json_out = false;
  RuntimeFlags runtime;
};

json candidate_json(const YarnCandidate& c) {
  return {{"ramp_low_pair", c.low}, {"ramp_high_pair", c.high}, {"beta_fast", c.beta_fast}, {"beta_slow", c.beta_slow},
          {"attention_factor", c.attention_factor}, {"fitness_nll", c.fitness}};
}

// The first `windows` windows of `ctx` tokens of a text, or an error naming the file.
std::vector<int> windows_of(const Tokenizer& tok, const std::string& path, int64_t ctx, int windows) {
  std::vector<int> ids = tok.encode(read_file_text(path), true, false);
  if (int64_t(ids.size()) < ctx * windows)
    throw_unreadable(path, fmt::format("has {} tokens, fewer than {} windows of the target context {}", ids.size(),
                                       windows, ctx));
  ids.resize(size_t(ctx * windows));
  return ids;
}

void run_calibrate(const CalibrateOptions& o) {
  if (o.method != "yarn")
    throw_unreadable("--method", "'" + o.method + "': only yarn is built so far (longrope's per-pair search is not)");
  const LlamaModel model = load_model(o.model);
  const auto tok = tokenizer_for_model(model, o.model, o.tokenizer);
  const int64_t L = model.hp.trained_context;
  if (o.target <= L)
    throw_unreadable("--target-context", fmt::format("{} is not past the model's trained length {}", o.target, L));
  if (!o.eval_text.empty() && file_sha256_hex(o.eval_text) == file_sha256_hex(o.text))
    throw_unreadable("--eval-text", o.eval_text + " is the calibration text: held-out results need other text");
  const double factor = double(o.target) / double(L);
  const json base_dict = {{"rope_type", "yarn"}, {"factor", factor}, {"original_max_position_embeddings", L}};
  const RopeSetting base = rope_setting_for_model(model, base_dict, fmt::format("yarn:{:g}", factor));
  const std::vector<int> ids = windows_of(*tok, o.text, o.target, o.windows);
  PerplexityOptions po;
  po.ctxs = {o.target};
  po.run = {o.runtime.chunk, o.runtime.threads, kv_cache_of(o.runtime), key_rotation_of(o.runtime)};
  auto nll_of = [&](const RopeSetting& s, std::span<const int> on, int64_t ctx) {
    PerplexityOptions p = po;
    p.ctxs = {ctx};
    return evaluate_perplexity(model, on, {s}, p)[0].nll;
  };
  const YarnFitness fitness = [&](const RopeSpec& spec) {
    RopeSetting s = base;
    s.spec = spec;
    return nll_of(s, ids, o.target);
  };
  YarnSearchOptions so;
  so.max_evals = o.max_evals;
  so.max_seconds = o.max_minutes * 60;
  std::fprintf(stderr, "ropescale: calibrating YaRN ×%g for %lld tokens on %d window(s) of %s (%d rotary pairs; "
                       "theoretical critical pair %d)\n",
               factor, (long long)o.target, o.windows, o.text.c_str(), base.spec.pairs(),
               theoretical_critical_pair(base.spec));
  ProgressBar bar("calibrate", "evals");
  double shown = INFINITY;
  const YarnSearchResult r = search_yarn(base.spec, fitness, so, [&](int done, int total, const YarnCandidate& best) {
    bar.update(done, total);
    if (best.fitness < shown) {
      shown = best.fitness;
      std::fprintf(stderr, "\rropescale: eval %d: best NLL %.4f — ramp pairs %d–%d, attention factor %.4f\n", done,
                   best.fitness, best.low, best.high, best.attention_factor);
    }
  });
  bar.finish();
  // The result as a dict every engine reads, resolved back to check it gives the searched spec.
  json dict = base_dict;
  dict["beta_fast"] = r.best.beta_fast;
  dict["beta_slow"] = r.best.beta_slow;
  dict["attention_factor"] = r.best.attention_factor;
  const RopeSetting calibrated = rope_setting_for_model(model, dict, "yarn-calibrated");
  json exports = json::object();
  for (ExportTarget t : {ExportTarget::HF, ExportTarget::VLLM, ExportTarget::LlamaCpp}) {
    const ExportResult e = export_setting(calibrated.position, t, o.target);
    exports[std::string(to_string(t))] = {{"text", e.text}, {"exact", e.exact}, {"notes", e.notes}};
  }
  json history = json::array();
  for (const auto& c : r.history) history.push_back(candidate_json(c));
  json doc = {{"method", "yarn"},
              {"model", o.model},
              {"trained_context", L},
              {"target_context", o.target},
              {"factor", factor},
              {"rope_scaling", dict},
              {"exports", exports},
              {"calibration", {{"text", o.text}, {"text_sha256", file_sha256_hex(o.text)}, {"windows", o.windows}}},
              {"search", {{"evals", r.evals},
                          {"seconds", r.seconds},
                          {"evals_per_second", r.seconds > 0 ? r.evals / r.seconds : 0.0},
                          {"stopped_by_budget", r.stopped_by_budget},
                          {"theoretical_critical_pair", theoretical_critical_pair(base.spec)},
                          {"yarn_default", candidate_json(r.yarn_default)},
                          {"best", candidate_json(r.best)},
                          {"history", history}}}};
  std::string table;
  if (!o.eval_text.empty()) {
    // Held out: other text, the target length and the trained length (the short-context cost).
    const RopeSetting none = rope_setting_for_model(model, json{{"rope_type", "default"}}, "none");
    json held = json::array();
    table = fmt::format("\nheld-out NLL on {} ({} windows each)\n{:<18}{:>14}{:>14}\n", o.eval_text, o.eval_windows,
                        "method", fmt::format("{} (1×)", L), fmt::format("{} ({:g}×)", o.target, factor));
    const std::vector<int> at_target = windows_of(*tok, o.eval_text, o.target, o.eval_windows);
    const std::vector<int> at_trained = windows_of(*tok, o.eval_text, L, o.eval_windows);
    for (const RopeSetting* s : {&none, &base, &calibrated}) {
      const double a = nll_of(*s, at_trained, L), b = nll_of(*s, at_target, o.target);
      held.push_back({{"method", s->label}, {"nll_trained", a}, {"nll_target", b}, {"ppl_trained", std::exp(a)},
                      {"ppl_target", std::exp(b)}});
      table += fmt::format("{:<18}{:>14.4f}{:>14.4f}\n", s->label, a, b);
    }
    doc["held_out"] = {{"text", o.eval_text}, {"windows", o.eval_windows}, {"results", held}};
  }
  if (!o.out.empty()) {
    write_file(o.out, safe_dump(doc, 2) + "\n", "calibration");
    std::fprintf(stderr, "ropescale: wrote calibration %s\n", o.out.c_str());
  }
  if (o.json_out) {
    print_json(doc);
    return;
  }
  std::printf("YaRN ×%g at %lld tokens: %d evaluations in %.1f s (%.2f / s)%s\n", factor, (long long)o.target, r.evals,
              r.seconds, r.seconds > 0 ? r.evals / r.seconds : 0.0, r.stopped_by_budget ? ", stopped by the budget" : "");
  std::printf("  YaRN as published: ramp pairs %d–%d, attention factor %.4f, calibration NLL %.4f\n", r.yarn_default.low,
              r.yarn_default.high, r.yarn_default.attention_factor, r.yarn_default.fitness);
  std::printf("  calibrated:        ramp pairs %d–%d, attention factor %.4f, calibration NLL %.4f (theoretical critical "
              "pair %d)\n",
              r.best.low, r.best.high, r.best.attention_factor, r.best.fitness, theoretical_critical_pair(base.spec));
  std::printf("%s\nrope_scaling: %s\n", table.c_str(), safe_dump(dict).c_str());
  for (const auto& [engine, e] : exports.items()) std::printf("%s: %s\n", engine.c_str(), e["text"].get<std::string>().c_str());
}

}  // namespace

void add_calibrate_commands(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CalibrateOptions>();
  auto* c = app.add_subcommand("calibrate", "Search a rope scaling for a model at a target length on your text (YaRN's "
                                            "ramp and attention factor) and write it for HF, vLLM and llama.cpp");
  c->add_option("--model", o->model, "Model file (llama2.c, GGUF) or HF directory")->required();
  c->add_option("--tokenizer", o->tokenizer, "Tokenizer (default: the model's own or beside it)");
  c->add_option("--text", o->text, "Calibration text")->required();
  c->add_option("--target-context", o->target, "The length to extend to (tokens)")->required()->check(CLI::PositiveNumber);
  c->add_option("--method", o->method, "yarn (longrope: not yet)")->capture_default_str();
  c->add_option("--windows", o->windows, "Calibration windows of the target length (the fitness is their mean NLL)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  c->add_option("--eval-text", o->eval_text, "Held-out text (not the calibration text): NLL of none, YaRN and the result");
  c->add_option("--eval-windows", o->eval_windows, "Held-out windows per length")->capture_default_str()->check(CLI::Range(1, 1024));
  c->add_option("--max-evals", o->max_evals, "Budget: fitness evaluations")->capture_default_str()->check(CLI::Range(1, 1000000));
  c->add_option("--max-minutes", o->max_minutes, "Budget: minutes")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--out", o->out, "Write the calibration (setting, exports, search history) as JSON to FILE");
  c->add_flag("--json", o->json_out, "Print the calibration as JSON");
  add_runtime_flags(c, o->runtime, {.rotation_auto = true});
  c->callback([o, &exit_code] {
    run_calibrate(*o);
    exit_code = 0;
  });
}

}  // namespace ropescale::cli
