// calibrate: search a scaling for one model at one target length on the user's
// text (YaRN's ramp and attention factor, or LongRoPE's per-pair factors by an
// evolutionary search), report it against NTK and YaRN as published on held-out
// text, and write the setting with its exports for HF, vLLM and llama.cpp.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <fmt/core.h>
#include <fmt/format.h>

#include "commands.h"
#include "eval_run.h"
#include "output.h"
#include "progress.h"
#include "runtime_flags.h"
#include "ropescale/advice/export.h"
#include "ropescale/calibrate/longrope_search.h"
#include "ropescale/calibrate/yarn_calibration.h"
#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/config/model_config.h"
#include "ropescale/config/sha256.h"
#include "ropescale/eval/eval_target.h"
#include "ropescale/eval/passkey.h"
#include "ropescale/eval/perplexity.h"
#include "ropescale/model/gguf_model.h"
#include "ropescale/model/tokenizer.h"
#include "ropescale/rope/frequencies.h"

namespace ropescale::cli {

using nlohmann::json;

namespace {

struct CalibrateOptions {
  std::string model, tokenizer, text, eval_text, method = "yarn", out, fitness = "ppl";
  int64_t target = 0;
  int needles = 4;
  int windows = 4, eval_windows = 4;
  int select_windows = 8;             // longrope: the final choice's windows (0: the search's best)
  std::optional<int> max_evals;        // unset: the method's own (yarn 400; longrope its whole search)
  std::optional<double> max_minutes;   // unset: yarn 3, longrope 20
  bool json_out = false;
  RuntimeFlags runtime;
  // longrope
  LongRopeSearchOptions search;
  std::optional<double> max_factor;    // unset: 2·s
  std::optional<double> attention;     // set: the attention factor, fixed (not searched)
  int short_iterations = 8;
  std::string short_mscale = "search";  // search: the short regime's own attention factor; long: HF's one factor
  std::string checkpoint, from;
  bool resume = false;
  std::string out_gguf;
};

json yarn_candidate_json(const YarnCandidate& c) {
  return {{"ramp_low_pair", c.low}, {"ramp_high_pair", c.high}, {"beta_fast", c.beta_fast}, {"beta_slow", c.beta_slow},
          {"attention_factor", c.attention_factor}, {"fitness_nll", c.fitness}};
}

json longrope_candidate_json(const LongRopeCandidate& c) {
  return {{"factors", c.factors}, {"attention_factor", c.attention_factor}, {"fitness_nll", c.fitness}};
}

LongRopeCandidate longrope_candidate_from_json(const json& j) {
  LongRopeCandidate c;
  c.factors = j.at("factors").get<std::vector<double>>();
  c.attention_factor = j.at("attention_factor").get<double>();
  c.fitness = j.at("fitness_nll").is_number() ? j.at("fitness_nll").get<double>() : INFINITY;
  return c;
}

// Windows of `ctx` tokens of a text, or an error naming the file. Held-out windows are the text's
// first ones (as `eval ppl --tokens` takes them). Calibration windows are a sample of the whole
// text: `search` + `select` non-overlapping windows spread from its start to its end with equal
// gaps, dealt out in turn so that the search's windows and the selection's (the validation split
// the final choice is made on) both span the text and never share a token.
std::vector<int> text_ids(const Tokenizer& tok, const std::string& path, int64_t ctx, int64_t windows) {
  std::vector<int> ids = tok.encode(read_file_text(path), true, false);
  if (int64_t(ids.size()) < ctx * windows)
    throw_unreadable(path, fmt::format("has {} tokens, fewer than {} windows of {} tokens", ids.size(), windows, ctx));
  return ids;
}

std::vector<int> first_windows(const Tokenizer& tok, const std::string& path, int64_t ctx, int windows) {
  std::vector<int> ids = text_ids(tok, path, ctx, windows);
  ids.resize(size_t(ctx * windows));
  return ids;
}

struct CalibrationWindows {
  std::vector<int> search, select;
};

CalibrationWindows spread_windows(const Tokenizer& tok, const std::string& path, int64_t ctx, int search, int select) {
  const std::vector<int> ids = text_ids(tok, path, ctx, search + select);
  const int64_t total = search + select, slack = int64_t(ids.size()) - ctx * total;
  CalibrationWindows w;
  for (int64_t i = 0; i < total; ++i) {
    const int64_t start = i * ctx + (total > 1 ? slack * i / (total - 1) : 0);
    // Window i goes to the search when the search's share of the first i + 1 windows grows.
    std::vector<int>& to = (i + 1) * search / total > i * search / total ? w.search : w.select;
    to.insert(to.end(), ids.begin() + start, ids.begin() + start + ctx);
  }
  return w;
}

// What every method shares: the model, the calibration windows, the fitness
// evaluation and the report around the search.
struct Calibration {
  const CalibrateOptions& o;
  LlamaModel model;
  std::unique_ptr<Tokenizer> tok;
  int64_t L = 0;
  double factor = 1;
  json yarn_dict;
  RopeSetting yarn;  // YaRN ×s as published: the reference every result is shown against
  std::vector<int> ids;         // the search's calibration windows
  std::vector<int> select_ids;  // longrope: the selection's, disjoint from them
  int select_windows = 0;       // how many (0: no selection)
  PerplexityOptions po;
  std::vector<PasskeyPrompt> needle_prompts;  // --fitness needle or ppl+needle

  explicit Calibration(const CalibrateOptions& opts) : o(opts), model(load_model(opts.model)) {
    tok = tokenizer_for_model(model, o.model, o.tokenizer);
    L = model.hp.trained_context;
    if (o.target <= L)
      throw_unreadable("--target-context", fmt::format("{} is not past the model's trained length {}", o.target, L));
    if (!o.eval_text.empty() && file_sha256_hex(o.eval_text) == file_sha256_hex(o.text))
      throw_unreadable("--eval-text", o.eval_text + " is the calibration text: held-out results need other text");
    factor = double(o.target) / double(L);
    yarn_dict = {{"rope_type", "yarn"}, {"factor", factor}, {"original_max_position_embeddings", L}};
    yarn = rope_setting_for_model(model, yarn_dict, fmt::format("yarn:{:g}", factor));
    select_windows = o.method == "longrope" && o.fitness == "ppl" ? o.select_windows : 0;
    CalibrationWindows w = spread_windows(*tok, o.text, o.target, o.windows, select_windows);
    ids = std::move(w.search);
    select_ids = std::move(w.select);
    po.ctxs = {o.target};
    po.run = run_options_of(o.runtime);
    if (o.fitness != "ppl") {
      // LongRoPE2's needle-driven perplexity: passkey prompts of the target length in the calibration
      // text, the needle at evenly spread depths; the fitness is the key's mean NLL per token.
      PasskeyOptions pk;
      pk.lengths = {o.target};
      for (int i = 0; i < o.needles; ++i) pk.depths.push_back((i + 0.5) / o.needles);
      pk.trials = 1;
      pk.alternatives = 1;
      pk.haystack = read_file_text(o.text);
      pk.run = po.run;
      needle_prompts = build_passkey_prompts(*tok, pk);
    }
  }
  std::string fitness_name() const {
    const std::string windows = fmt::format("mean NLL of {} window(s)", o.windows);
    const std::string needles = fmt::format("needle NLL of {} passkey prompt(s)", o.needles);
    if (o.fitness == "ppl") return windows;
    return o.fitness == "needle" ? needles : windows + " + " + needles;
  }
  // The fitness of a setting: the mean NLL of the calibration windows at the target
  // length, or (--fitness needle) of the needles' keys, or (ppl+needle) their sum.
  double fitness_of(const RopeSetting& s) const {
    const double windows = o.fitness == "needle" ? 0.0 : nll_of(s, ids, o.target);
    return needle_prompts.empty() ? windows : windows + needle_nll(s);
  }
  // The passkeys' mean NLL per key token (LongRoPE2's needle perplexity, as a log).
  double needle_nll(const RopeSetting& s) const {
    std::vector<const RetrievalPrompt*> prompts;
    for (const auto& p : needle_prompts) prompts.push_back(&p);
    const auto outcomes = LocalTarget(model, *tok, po.run).retrieve(std::vector<RopeSetting>{s}, prompts, 0, {})[0];
    double sum = 0;
    for (size_t i = 0; i < outcomes.size(); ++i)
      sum += -outcomes[i].answer_logprobs[0] / double(needle_prompts[i].answers[0].size());
    return sum / double(outcomes.size());
  }
  double nll_of(const RopeSetting& s, std::span<const int> on, int64_t ctx) const {
    PerplexityOptions p = po;
    p.ctxs = {ctx};
    return evaluate_perplexity(model, on, {s}, p)[0].nll;
  }
  RopeSetting with_spec(const RopeSpec& spec, std::string label) const {
    RopeSetting s = yarn;
    s.spec = spec;
    s.label = std::move(label);
    return s;
  }

  // The document: the setting as a dict every engine reads (resolved back, so a
  // dict the registry refuses fails here), its exports, the search, held-out results.
  json document(const json& dict, const std::string& label, json search, std::string& table) const {
    const RopeSetting calibrated = rope_setting_for_model(model, dict, label);
    json exports = json::object();
    for (ExportTarget t : {ExportTarget::HF, ExportTarget::VLLM, ExportTarget::LlamaCpp}) {
      const ExportResult e = export_setting(calibrated.position, t, o.target);
      exports[std::string(to_string(t))] = {{"text", e.text}, {"exact", e.exact}, {"notes", e.notes}};
    }
    json doc = {{"method", o.method},
                {"model", o.model},
                {"trained_context", L},
                {"target_context", o.target},
                {"factor", factor},
                {"rope_scaling", dict},
                {"exports", exports},
                {"calibration", {{"text", o.text}, {"text_sha256", file_sha256_hex(o.text)}, {"windows", o.windows},
                                 {"select_windows", select_windows},
                                 {"placement", "spread over the text"}, {"fitness", fitness_name()}}},
                {"search", std::move(search)}};
    if (!o.eval_text.empty()) {
      // Held out: other text, the target length and the trained length (the short-context cost).
      const RopeSetting none = rope_setting_for_model(model, json{{"rope_type", "default"}}, "none");
      const RopeSetting ntk = rope_setting_for_model(model, json{{"rope_type", "ntk"}, {"factor", factor}},
                                                     fmt::format("ntk:{:g}", factor));
      json held = json::array();
      table = fmt::format("\nheld-out NLL on {} ({} windows each)\n{:<20}{:>14}{:>14}\n", o.eval_text, o.eval_windows,
                          "method", fmt::format("{} (1×)", L), fmt::format("{} ({:g}×)", o.target, factor));
      const std::vector<int> at_target = first_windows(*tok, o.eval_text, o.target, o.eval_windows);
      const std::vector<int> at_trained = first_windows(*tok, o.eval_text, L, o.eval_windows);
      for (const RopeSetting* s : {&none, &ntk, &yarn, &calibrated}) {
        const double a = nll_of(*s, at_trained, L), b = nll_of(*s, at_target, o.target);
        held.push_back({{"method", s->label}, {"nll_trained", a}, {"nll_target", b}, {"ppl_trained", std::exp(a)},
                        {"ppl_target", std::exp(b)}});
        table += fmt::format("{:<20}{:>14.4f}{:>14.4f}\n", s->label, a, b);
      }
      doc["held_out"] = {{"text", o.eval_text}, {"windows", o.eval_windows}, {"results", held}};
    }
    if (!o.out_gguf.empty()) {
      // The model with the calibrated setting, as llama.cpp runs it (convert --rope-scaling does the same).
      const auto vocabulary = vocabulary_for_model(model, o.model, o.tokenizer);
      const json training = std::filesystem::is_directory(o.model) ? json() : load_gguf_training_record(o.model);
      write_file(o.out_gguf, serialize_gguf_model(model, vocabulary, WeightType::F32, dict, training));
      json gguf = {{"file", o.out_gguf}, {"weights", "f32"}};
      if (calibrated.spec.type == RopeType::LongRope)
        gguf["note"] = fmt::format("llama.cpp's llama architecture takes the long factors as rope_freqs.weight and the "
                                   "attention factor as rope.scaling.attn_factor, and applies both at every length: "
                                   "below {} tokens it does not switch to the short factors as HF does",
                                   L + 1);
      doc["gguf"] = gguf;
      std::fprintf(stderr, "ropescale: wrote %s (the model with the calibrated setting, for llama.cpp)\n", o.out_gguf.c_str());
    }
    if (!o.out.empty()) {
      write_file(o.out, safe_dump(doc, 2) + "\n", "calibration");
      std::fprintf(stderr, "ropescale: wrote calibration %s\n", o.out.c_str());
    }
    return doc;
  }
};

void print_exports(const json& doc) {
  std::printf("rope_scaling: %s\n", safe_dump(doc["rope_scaling"]).c_str());
  for (const auto& [engine, e] : doc["exports"].items())
    std::printf("%s: %s\n", engine.c_str(), e["text"].get<std::string>().c_str());
}

void run_yarn(const Calibration& cal) {
  const CalibrateOptions& o = cal.o;
  const YarnFitness fitness = [&](const RopeSpec& spec) { return cal.fitness_of(cal.with_spec(spec, "candidate")); };
  YarnSearchOptions so;
  so.max_evals = o.max_evals.value_or(400);
  so.max_seconds = o.max_minutes.value_or(3) * 60;
  const RopeSpec& base = cal.yarn.spec;
  std::fprintf(stderr, "ropescale: calibrating YaRN ×%g for %lld tokens, fitness %s of %s (%d rotary pairs; "
                       "theoretical critical pair %d)\n",
               cal.factor, (long long)o.target, cal.fitness_name().c_str(), o.text.c_str(), base.pairs(),
               theoretical_critical_pair(base));
  ProgressBar bar("calibrate", "evals");
  double shown = INFINITY;
  const YarnSearchResult r = search_yarn(base, fitness, so, [&](int done, int total, const YarnCandidate& best) {
    bar.update(done, total);
    if (best.fitness < shown) {
      shown = best.fitness;
      std::fprintf(stderr, "\rropescale: eval %d: best NLL %.4f — ramp pairs %d–%d, attention factor %.4f\n", done,
                   best.fitness, best.low, best.high, best.attention_factor);
    }
  });
  bar.finish();
  json dict = cal.yarn_dict;
  dict["beta_fast"] = r.best.beta_fast;
  dict["beta_slow"] = r.best.beta_slow;
  dict["attention_factor"] = r.best.attention_factor;
  json history = json::array();
  for (const auto& c : r.history) history.push_back(yarn_candidate_json(c));
  std::string table;
  const json doc = cal.document(dict, "yarn-calibrated",
                                {{"evals", r.evals},
                                 {"seconds", r.seconds},
                                 {"evals_per_second", r.seconds > 0 ? r.evals / r.seconds : 0.0},
                                 {"stopped_by_budget", r.stopped_by_budget},
                                 {"theoretical_critical_pair", theoretical_critical_pair(base)},
                                 {"yarn_default", yarn_candidate_json(r.yarn_default)},
                                 {"best", yarn_candidate_json(r.best)},
                                 {"history", history}},
                                table);
  if (o.json_out) return print_json(doc);
  std::printf("YaRN ×%g at %lld tokens: %d evaluations in %.1f s (%.2f / s)%s\n", cal.factor, (long long)o.target, r.evals,
              r.seconds, r.seconds > 0 ? r.evals / r.seconds : 0.0, r.stopped_by_budget ? ", stopped by the budget" : "");
  std::printf("  YaRN as published: ramp pairs %d–%d, attention factor %.4f, calibration NLL %.4f\n", r.yarn_default.low,
              r.yarn_default.high, r.yarn_default.attention_factor, r.yarn_default.fitness);
  std::printf("  calibrated:        ramp pairs %d–%d, attention factor %.4f, calibration NLL %.4f (theoretical critical "
              "pair %d)\n",
              r.best.low, r.best.high, r.best.attention_factor, r.best.fitness, theoretical_critical_pair(base));
  std::printf("%s\n", table.c_str());
  print_exports(doc);
}

// ---- longrope ------------------------------------------------------------------

json search_state_json(const LongRopeSearchState& s, const json& identity) {
  json pop = json::array(), hist = json::array(), rnd = json::array();
  for (const auto& c : s.population) pop.push_back(longrope_candidate_json(c));
  for (const auto& c : s.history) hist.push_back(longrope_candidate_json(c));
  for (uint64_t w : s.random.s) rnd.push_back(std::to_string(w));  // exact, whatever reads it
  return {{"ropescale_longrope_checkpoint", 1}, {"identity", identity}, {"generation", s.generation},
          {"evals", s.evals}, {"seconds", s.seconds}, {"random", rnd}, {"best_by_generation", s.best_by_generation},
          {"population", pop}, {"history", hist}};
}

LongRopeSearchState search_state_from_file(const std::string& path, const json& identity) {
  const json j = json::parse(read_file_text(path), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("ropescale_longrope_checkpoint"))
    throw_unreadable(path, "is not a longrope search checkpoint (calibrate --checkpoint writes one)");
  for (const auto& [key, value] : identity.items())
    if (!j.contains("identity") || !j["identity"].contains(key) || j["identity"][key] != value)
      throw_unreadable(path, fmt::format("is the checkpoint of another search: its {} is {}, this search's {}", key,
                                         j.contains("identity") && j["identity"].contains(key) ? j["identity"][key].dump() : "absent",
                                         value.dump()));
  LongRopeSearchState s;
  try {
    s.generation = j.at("generation").get<int>();
    s.evals = j.at("evals").get<int>();
    s.seconds = j.at("seconds").get<double>();
    for (int i = 0; i < 4; ++i) s.random.s[size_t(i)] = std::stoull(j.at("random").at(size_t(i)).get<std::string>());
    s.best_by_generation = j.at("best_by_generation").get<std::vector<double>>();
    for (const auto& c : j.at("population")) s.population.push_back(longrope_candidate_from_json(c));
    for (const auto& c : j.at("history")) s.history.push_back(longrope_candidate_from_json(c));
  } catch (const std::exception& e) {
    throw_unreadable(path, std::string("is a damaged checkpoint: ") + e.what());
  }
  if (s.population.empty()) throw_unreadable(path, "is a damaged checkpoint: no population");
  return s;
}

// --from: an earlier setting (a calibration, a config.json) as per-pair divisors past its trained length,
// as it is (with the attention factor it applies there) and rescaled to this factor (LongRoPE's
// 1 + (λ − 1)·(s′ − 1)/(s − 1), with the search's start value).
struct EarlierSeeds {
  std::vector<std::vector<double>> factors;  // as it is, then (another factor) rescaled
  double attention_factor = 1;               // the earlier setting's own at the target length
};
EarlierSeeds seeds_from(const Calibration& cal, const std::string& path) {
  const json dict = read_rope_dict_file(path);  // a calibration, an HF config.json, or a bare dict
  RopeSetting earlier;
  try {
    earlier = rope_setting_for_model(cal.model, dict, "from");
  } catch (const std::exception& e) {
    throw_unreadable(path, std::string("rope_scaling: ") + e.what());
  }
  const RopeSpec& es = earlier.spec;
  const auto freqs = compute_frequencies(es, std::max<int64_t>(cal.L + 1, cal.o.target));
  const auto div = divisors_against_default(es, freqs);
  const double s_old = es.factor;
  EarlierSeeds seeds{{div}, std::max(1.0, freqs.attention_factor)};  // the search's bound: ≥ 1
  if (s_old > 1 && std::abs(s_old - cal.factor) > 1e-9) {
    std::vector<double> scaled = div;
    for (double& x : scaled) x = 1 + (x - 1) * (cal.factor - 1) / (s_old - 1);
    seeds.factors.push_back(scaled);
  }
  return seeds;
}

void run_longrope(const Calibration& cal) {
  const CalibrateOptions& o = cal.o;
  const RopeSpec& base = cal.yarn.spec;
  const double s = cal.factor;
  LongRopeSearchOptions so = o.search;
  so.upper = o.max_factor.value_or(2 * s);
  if (!(so.upper > so.lower))
    throw_unreadable("--max-factor", fmt::format("{} must be above the lower bound {}", so.upper, so.lower));
  so.attention_factor = o.attention.value_or(longrope_attention_factor(s, cal.L));
  so.search_attention = !o.attention.has_value();
  so.max_evals = o.max_evals.value_or(1 << 30);
  const double budget_seconds = o.max_minutes.value_or(20) * 60;
  const auto t0 = std::chrono::steady_clock::now();
  so.max_seconds = budget_seconds;
  EarlierSeeds earlier;
  if (!o.from.empty()) earlier = seeds_from(cal, o.from);
  const auto seeds = longrope_seed_factors(base, so, earlier.factors);
  if (!o.from.empty() && so.search_attention) {  // the earlier result as it is, attention factor included
    so.seed_attention.assign(seeds.size(), NAN);
    so.seed_attention[seeds.size() - earlier.factors.size()] = earlier.attention_factor;
  }
  const json identity = {{"model_sha256", file_sha256_hex(o.model)}, {"text_sha256", file_sha256_hex(o.text)},
                         {"target_context", o.target}, {"windows", o.windows},
                         {"select_windows", cal.select_windows}, {"seed", std::to_string(so.seed)},
                         {"population", so.population}, {"mutations", so.mutations}, {"crossovers", so.crossovers},
                         {"parents", so.parents}, {"step", so.step}, {"upper", so.upper}, {"from", o.from},
                         {"attention_factor", o.attention ? json(*o.attention) : json("searched")},
                         {"fitness", o.fitness}, {"needles", o.needles}};
  std::optional<LongRopeSearchState> resumed;
  if (o.resume) {
    if (o.checkpoint.empty()) throw_unreadable("--resume", "needs --checkpoint FILE to resume from");
    resumed = search_state_from_file(o.checkpoint, identity);
    std::fprintf(stderr, "ropescale: resuming %s at generation %d (%d evaluations, best NLL %.4f)\n",
                 o.checkpoint.c_str(), resumed->generation, resumed->evals, resumed->population.front().fitness);
  }
  const int planned = so.population + so.iterations * (so.mutations + so.crossovers);
  std::fprintf(stderr, "ropescale: LongRoPE search ×%g for %lld tokens, fitness %s of %s: %d pairs in [%g, %g] step %g, "
                       "population %d, %d generations (≈ %d evaluations), seed %llu\n",
               s, (long long)o.target, cal.fitness_name().c_str(), o.text.c_str(), base.pairs(), so.lower, so.upper,
               so.step, so.population, so.iterations, planned, (unsigned long long)so.seed);
  // A candidate's long factors at every length: what the search and the selection score.
  const auto long_setting = [&](const LongRopeCandidate& c) {
    return cal.with_spec(longrope_spec(base, c.factors, c.factors, c.attention_factor), "candidate");
  };
  const LongRopeFitness long_fitness = [&](const LongRopeCandidate& c) { return cal.fitness_of(long_setting(c)); };
  ProgressBar bar("longrope", "evals");
  int shown_generation = -1;
  auto progress = [&](const LongRopeSearchState& st) { bar.update(std::min(st.evals, planned), planned); };
  auto checkpoint = [&](const LongRopeSearchState& st) {
    if (!o.checkpoint.empty()) write_file(o.checkpoint, safe_dump(search_state_json(st, identity)) + "\n", "checkpoint");
    if (st.generation != shown_generation) {
      shown_generation = st.generation;
      const double per_eval = st.evals > 0 ? st.seconds / st.evals : 0;
      std::fprintf(stderr, "\rropescale: generation %d/%d: best NLL %.4f (attention %.3f), %d evals, %s, ETA %s\n",
                   st.generation, so.iterations, st.population.front().fitness, st.population.front().attention_factor,
                   st.evals, format_duration(st.seconds).c_str(),
                   format_duration(per_eval * std::max(0, planned - st.evals)).c_str());
    }
  };
  const LongRopeSearchResult r = search_longrope(seeds, long_fitness, so, resumed ? &*resumed : nullptr, checkpoint, progress);
  bar.finish();
  // The final choice: the last generation's parents ranked on the selection windows, which the
  // search never saw (its top candidates differ by less than the windows' own noise).
  LongRopeCandidate best = r.best();
  json selection = nullptr;
  if (cal.select_windows > 0) {
    const auto ts = std::chrono::steady_clock::now();
    ProgressBar select_bar("select", "candidates");
    const int k = std::min<int>(so.parents, int(r.state.population.size()));
    int scored = 0;
    const LongRopeSelection sel = select_longrope(r.state.population, k, [&](const LongRopeCandidate& c) {
      const double nll = cal.nll_of(long_setting(c), cal.select_ids, o.target);
      select_bar.update(++scored, k);
      return nll;
    });
    select_bar.finish();
    best = r.state.population[sel.chosen];
    const double select_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    std::fprintf(stderr, "ropescale: selection on %d other window(s): the search's #%zu of %d chosen, NLL %.4f there "
                         "(the search's best: %.4f), %s\n",
                 cal.select_windows, sel.chosen + 1, k, sel.scores[sel.chosen], sel.scores[0],
                 format_duration(select_seconds).c_str());
    selection = {{"windows", cal.select_windows}, {"candidates", k}, {"chosen_rank", sel.chosen + 1},
                 {"chosen_nll", sel.scores[sel.chosen]}, {"search_best_nll", sel.scores[0]}, {"nll", sel.scores},
                 {"seconds", select_seconds}};
  }
  // The short factors: at the trained length, starting from 1, with their own attention factor (or the long one).
  std::vector<double> short_factor(size_t(base.pairs()), 1.0);
  std::optional<double> short_mscale;  // searched: the short regime's attention factor
  json short_search = nullptr;
  double short_fitness = NAN, short_ones = NAN;
  const double left = budget_seconds - std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.short_iterations > 0 && left <= 0)
    std::fprintf(stderr, "ropescale: note: the budget (--max-minutes) is spent; the short factors are not searched "
                         "and stay 1\n");
  if (o.short_iterations > 0 && left > 0) {
    const int short_windows = int(std::max<int64_t>(1, o.windows * o.target / cal.L));
    const std::vector<int> short_ids = spread_windows(*cal.tok, o.text, cal.L, short_windows, 0).search;
    LongRopeSearchOptions ss = so;
    ss.population = 16, ss.iterations = o.short_iterations, ss.mutations = 8, ss.crossovers = 8, ss.parents = 8;
    // The short regime's attention factor (short_mscale) is searched with its factors, from 1 (the trained
    // model's own), unless --short-mscale long keeps the long one at every length as HF's longrope does.
    const bool own_mscale = o.short_mscale == "search";
    ss.upper = s, ss.search_attention = own_mscale, ss.attention_factor = own_mscale ? 1.0 : best.attention_factor;
    ss.max_seconds = left, ss.max_evals = 1 << 30;
    std::vector<std::vector<double>> short_seeds = {short_factor, longrope_seed_factors(base, ss)[1]};  // 1, NTK
    const LongRopeFitness fit = [&](const LongRopeCandidate& c) {
      return cal.nll_of(cal.with_spec(longrope_spec(base, c.factors, best.factors, best.attention_factor,
                                                    own_mscale ? std::optional(c.attention_factor) : std::nullopt),
                                      "candidate"),
                        short_ids, cal.L);
    };
    std::fprintf(stderr, "ropescale: short factors at %lld tokens on %d window(s), %d generations\n", (long long)cal.L,
                 short_windows, ss.iterations);
    const LongRopeSearchResult sr = search_longrope(short_seeds, fit, ss);
    short_factor = sr.best().factors;
    if (own_mscale) short_mscale = sr.best().attention_factor;
    short_fitness = sr.best().fitness;
    short_ones = sr.state.history.front().fitness;
    short_search = {{"evals", sr.state.evals}, {"seconds", sr.state.seconds}, {"windows", short_windows},
                    {"ones_fitness_nll", short_ones}, {"best", longrope_candidate_json(sr.best())},
                    {"stopped_by_budget", sr.stopped_by_budget}};
  }
  json dict = {{"rope_type", "longrope"}, {"factor", s}, {"original_max_position_embeddings", cal.L},
               {"short_factor", short_factor}, {"long_factor", best.factors}, {"attention_factor", best.attention_factor}};
  if (short_mscale) {  // one attention factor per regime, in the keys vLLM and HF's PhiMoE read
    dict["short_mscale"] = *short_mscale;
    dict["long_mscale"] = best.attention_factor;
  }
  json history = json::array();
  for (const auto& c : r.state.history) history.push_back(longrope_candidate_json(c));
  json seed_fitness = json::array();
  for (size_t i = 0; i < std::min({seeds.size(), size_t(so.population), r.state.history.size()}); ++i)
    seed_fitness.push_back(r.state.history[i].fitness);
  std::string table;
  const double seconds = r.state.seconds;
  const json doc = cal.document(dict, "longrope-calibrated",
                                {{"evals", r.state.evals},
                                 {"seconds", seconds},
                                 {"evals_per_second", seconds > 0 ? r.state.evals / seconds : 0.0},
                                 {"generations", r.state.generation},
                                 {"stopped_by_budget", r.stopped_by_budget},
                                 {"seed", so.seed},
                                 {"options", {{"population", so.population}, {"iterations", so.iterations},
                                              {"mutations", so.mutations}, {"crossovers", so.crossovers},
                                              {"parents", so.parents}, {"step", so.step},
                                              {"mutation_probability", so.mutation_probability},
                                              {"lower", so.lower}, {"upper", so.upper}}},
                                 {"seed_names", "PI, NTK, YaRN, critical-pair seeds, --from"},
                                 {"seeds", seeds.size()},
                                 {"from", o.from},
                                 {"seed_fitness_nll", seed_fitness},
                                 {"best_by_generation", r.state.best_by_generation},
                                 {"best", longrope_candidate_json(best)},
                                 {"selection", selection},
                                 {"short", short_search},
                                 {"history", history}},
                                table);
  if (o.json_out) return print_json(doc);
  std::printf("LongRoPE ×%g at %lld tokens: %d evaluations in %.1f s (%.2f / s), %d generations%s\n", s,
              (long long)o.target, r.state.evals, seconds, seconds > 0 ? r.state.evals / seconds : 0.0, r.state.generation,
              r.stopped_by_budget ? ", stopped by the budget" : "");
  std::printf("  calibration NLL: PI %.4f, NTK %.4f, YaRN %.4f → searched %.4f (attention factor %.3f)\n",
              seed_fitness.size() > 0 ? seed_fitness[0].get<double>() : NAN,
              seed_fitness.size() > 1 ? seed_fitness[1].get<double>() : NAN,
              seed_fitness.size() > 2 ? seed_fitness[2].get<double>() : NAN, best.fitness, best.attention_factor);
  std::printf("  long factors:  %s\n", fmt::format("{}", fmt::join(best.factors, " ")).c_str());
  if (!selection.is_null())
    std::printf("  chosen on %d other windows: the search's #%d of %d (NLL %.4f there; the search's best %.4f)\n",
                cal.select_windows, selection["chosen_rank"].get<int>(), selection["candidates"].get<int>(),
                selection["chosen_nll"].get<double>(), selection["search_best_nll"].get<double>());
  if (!short_search.is_null())
    std::printf("  short factors: %s%s (NLL at %lld: %.4f; all 1: %.4f)\n",
                fmt::format("{}", fmt::join(short_factor, " ")).c_str(),
                short_mscale ? fmt::format(", short_mscale {:.3f}", *short_mscale).c_str() : "", (long long)cal.L, short_fitness,
                short_ones);
  std::printf("%s\n", table.c_str());
  print_exports(doc);
}

void run_calibrate(const CalibrateOptions& o) {
  if (o.method != "yarn" && o.method != "longrope")
    throw_unreadable("--method", "'" + o.method + "': the methods are yarn and longrope");
  const Calibration cal(o);
  if (o.method == "yarn") run_yarn(cal);
  else run_longrope(cal);
}

}  // namespace

void add_calibrate_commands(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CalibrateOptions>();
  auto* c = app.add_subcommand("calibrate", "Search a rope scaling for a model at a target length on your text (YaRN's "
                                            "ramp and attention factor, or LongRoPE's per-pair factors) and write it "
                                            "for HF, vLLM and llama.cpp");
  c->add_option("--model", o->model, "Model file (llama2.c, GGUF) or HF directory")->required();
  c->add_option("--tokenizer", o->tokenizer, "Tokenizer (default: the model's own or beside it)");
  c->add_option("--text", o->text, "Calibration text")->required();
  c->add_option("--target-context", o->target, "The length to extend to (tokens)")->required()->check(CLI::PositiveNumber);
  c->add_option("--method", o->method, "yarn (ramp + attention factor, a few hundred evaluations) or longrope "
                                       "(evolutionary search of per-pair factors, short factors after)")
      ->capture_default_str()->check(CLI::IsMember({"yarn", "longrope"}));
  c->add_option("--windows", o->windows, "Calibration windows of the target length, spread over the text (the "
                                         "fitness is their mean NLL)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  c->add_option("--fitness", o->fitness, "ppl: mean NLL of the calibration windows; needle: the NLL of passkey keys "
                                         "hidden in the calibration text at the target length (LongRoPE2's needle "
                                         "perplexity); ppl+needle: their sum (language modelling and retrieval)")
      ->capture_default_str()->check(CLI::IsMember({"ppl", "needle", "ppl+needle"}));
  c->add_option("--needles", o->needles, "--fitness needle or ppl+needle: prompts (the needle at evenly spread depths)")
      ->capture_default_str()->check(CLI::Range(1, 256));
  c->add_option("--eval-text", o->eval_text,
                "Held-out text (not the calibration text): NLL of none, NTK, YaRN and the result at 1× and the target");
  c->add_option("--eval-windows", o->eval_windows, "Held-out windows per length")->capture_default_str()->check(CLI::Range(1, 1024));
  c->add_option("--max-evals", o->max_evals, "Budget: fitness evaluations (default: yarn 400, longrope the whole search)")
      ->check(CLI::Range(1, 1000000));
  c->add_option("--max-minutes", o->max_minutes, "Budget: minutes (default: yarn 3, longrope 20)")->check(CLI::PositiveNumber);
  c->add_option("--out", o->out, "Write the calibration (setting, exports, search history) as JSON to FILE");
  c->add_flag("--json", o->json_out, "Print the calibration as JSON");
  c->add_option("--out-gguf", o->out_gguf, "Write the model with the calibrated setting as a GGUF llama.cpp runs (f32)");
  auto* lr = c->add_option_group("longrope", "The LongRoPE search (--method longrope)");
  lr->add_option("--select-windows", o->select_windows,
                 "The final choice: the last generation's parents ranked by their NLL on this many other windows of "
                 "--text, which the search never sees (0: the search's best; --fitness ppl)")
      ->capture_default_str()->check(CLI::Range(0, 1024));
  lr->add_option("--population", o->search.population, "Population")->capture_default_str()->check(CLI::Range(2, 4096));
  lr->add_option("--iterations", o->search.iterations, "Generations")->capture_default_str()->check(CLI::Range(0, 10000));
  lr->add_option("--mutations", o->search.mutations, "Mutants per generation")->capture_default_str()->check(CLI::Range(0, 4096));
  lr->add_option("--crossovers", o->search.crossovers, "Crossover children per generation")->capture_default_str()->check(CLI::Range(0, 4096));
  lr->add_option("--parents", o->search.parents, "Best kept as parents")->capture_default_str()->check(CLI::Range(1, 4096));
  lr->add_option("--step", o->search.step, "Grid of the factors")->capture_default_str()->check(CLI::Range(1e-4, 1.0));
  lr->add_option("--mutation-probability", o->search.mutation_probability, "Per pair")->capture_default_str()->check(CLI::Range(0.01, 1.0));
  lr->add_option("--max-factor", o->max_factor, "Upper bound of every factor (default: 2 × the factor)")->check(CLI::Range(1.0, 1e6));
  lr->add_option("--attention-factor", o->attention,
                 "Fix the attention factor (HF applies it at every length: 1 keeps short prompts exact) instead "
                 "of searching it from sqrt(1 + ln s / ln L)")
      ->check(CLI::Range(1.0, 4.0));
  lr->add_option("--seed", o->search.seed, "Random seed (the same seed, the same search)")->capture_default_str();
  lr->add_option("--short-iterations", o->short_iterations, "Generations of the short-factor search at the trained "
                                                            "length (0: short factors all 1)")
      ->capture_default_str()->check(CLI::Range(0, 10000));
  lr->add_option("--short-mscale", o->short_mscale,
                 "search: the short factors' search also finds the attention factor within the trained length "
                 "(short_mscale, long_mscale in the result: read by vLLM and by HF's PhiMoE; HF's Llama/Phi-3 longrope "
                 "applies attention_factor at every length); long: one attention factor for both")
      ->capture_default_str()
      ->check(CLI::IsMember({"search", "long"}));
  lr->add_option("--checkpoint", o->checkpoint, "Write the search state to FILE after every generation");
  lr->add_flag("--resume", o->resume, "Continue the search saved in --checkpoint FILE (same model, text and options)");
  lr->add_option("--from", o->from, "Start from an earlier calibration (progressive extension): its setting, as is and "
                                    "rescaled to this factor, joins the seeds");
  add_runtime_flags(c, o->runtime, {.kv_window = false, .rotation_auto = true});
  c->callback([o, &exit_code] {
    run_calibrate(*o);
    exit_code = 0;
  });
}

}  // namespace ropescale::cli
