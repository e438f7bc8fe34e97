#include "ropescale/eval/eval_report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/core.h>

#include "ropescale/advice/export.h"
#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/eval/svg_plot.h"
#include "eval_report_parts.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

using json = nlohmann::json;

namespace report {

// Results are joined to their method by the setting itself (label and resolved spec).
const PerplexityResult* find_ppl(const EvalReport& r, const RopeSetting& method, int64_t ctx) {
  for (const auto& x : r.ppl)
    if (x.ctx == ctx && x.setting == method) return &x;
  return nullptr;
}

std::vector<int64_t> short_contexts(const EvalReport& r, const LlamaModel& m) {
  std::vector<int64_t> out;
  for (int64_t c : r.ppl_options.ctxs)
    if (c <= m.hp.trained_context) out.push_back(c);
  return out;
}

// A line style per method: a colour per family, a dash per factor.
Style method_style(const RopeSetting& m) {
  const bool own = m.override_dict.is_null();  // "model": the file's own setting
  Style s{own ? "#555555" : std::string(m.info().colour), ""};
  const double factor = m.spec.type == RopeType::Default ? 0 : m.spec.factor;
  if (factor > 2.5 && factor <= 5) s.dash = "7 3";
  else if (factor > 5 && factor <= 10) s.dash = "3 2";
  else if (factor > 10) s.dash = "9 3 2 3";
  return s;
}

std::string fixed(double v, int digits) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "—"; }

std::string kv_name(KvType k) { return std::string(to_string(k)); }

KvMemoryTable kv_memory_table(const EvalReport& r) {
  KvMemoryTable t;
  for (const auto& x : r.kv_memory) {
    if (std::find(t.policies.begin(), t.policies.end(), x.policy) == t.policies.end()) t.policies.push_back(x.policy);
    if (std::find(t.lengths.begin(), t.lengths.end(), x.tokens) == t.lengths.end()) t.lengths.push_back(x.tokens);
  }
  std::sort(t.lengths.begin(), t.lengths.end());
  return t;
}

const KvMemoryRow* KvMemoryTable::find(const EvalReport& r, const std::string& policy, int64_t tokens) const {
  for (const auto& x : r.kv_memory)
    if (x.policy == policy && x.tokens == tokens) return &x;
  return nullptr;
}
std::string rotation_name(const std::optional<KeyRotation>& k) {
  return !k ? "auto (read for length-dependent methods, else write)" : *k == KeyRotation::AtRead ? "read" : "write";
}

json method_exports(const RopeSetting& m, int64_t target_context) {
  json out = json::object();
  try {
    for (ExportTarget t : {ExportTarget::HF, ExportTarget::VLLM, ExportTarget::LlamaCpp}) {
      const ExportResult e = export_setting(m.position, t, target_context);
      out[std::string(to_string(t))] = {{"text", e.text}, {"exact", e.exact}, {"notes", e.notes}};
    }
  } catch (const ConfigError& e) {
    out["error"] = e.what();
  }
  return out;
}

// One method at one length, over every depth: exact retrievals, trials, and
// the trial-weighted rank score.
PasskeyCell passkey_total(const std::vector<PasskeyCell>& cells, const std::string& method, int64_t length) {
  PasskeyCell t{method, length, 0.0, 0, 0, 0.0, 0.0, 0.0};
  for (const auto& c : cells)
    if (c.method == method && c.length == length)
      t.exact += c.exact, t.trials += c.trials, t.rank_score += c.rank_score * c.trials, t.needle_nll += c.needle_nll * c.trials;
  if (t.trials) t.rank_score /= t.trials, t.needle_nll /= t.trials;
  return t;
}

double percent_change(double x, double base) { return (x / base - 1.0) * 100.0; }

json effective_json(const EffectiveContextRule& rule) {
  return {{"threshold", rule.threshold}, {"higher_is_better", rule.higher_is_better},
          {"reference_bound", rule.reference_bound}};
}

}  // namespace report

using namespace report;

std::vector<EffectiveContextRow> effective_context_rows(const EvalReport& r, int64_t trained) {
  std::vector<EffectiveContextRow> rows;
  auto add = [&](const std::string& method, const std::string& task, const std::vector<LengthScore>& acc,
                 const std::vector<LengthScore>& nll) {
    rows.push_back({method, task, "accuracy", effective_context(acc, trained, r.effective_accuracy)});
    rows.push_back({method, task, "needle_nll", effective_context(nll, trained, r.effective_nll)});
  };
  if (r.passkey_options) {
    const auto cells = passkey_cells(r.passkey, r.passkey_options->alternatives);
    for (const auto& m : r.methods) {
      std::vector<LengthScore> acc, nll;
      for (int64_t l : r.passkey_options->lengths) {
        const PasskeyCell t = passkey_total(cells, m.label, l);
        if (!t.trials) continue;
        acc.push_back({l, double(t.exact) / t.trials});
        nll.push_back({l, t.needle_nll});
      }
      add(m.label, "passkey", acc, nll);
    }
  }
  if (r.task_options) {
    const auto totals = task_cells(r.tasks, true);
    for (const auto& m : r.methods)
      for (TaskKind k : r.task_options->tasks) {
        std::vector<LengthScore> acc, nll;
        for (const auto& c : totals)
          if (c.method == m.label && c.kind == k) acc.push_back({c.length, c.score}), nll.push_back({c.length, c.needle_nll});
        add(m.label, task_info(k).name, acc, nll);
      }
  }
  return rows;
}

const RopeSetting* baseline_method(const EvalReport& r) {
  for (const auto& m : r.methods)
    if (m.label == rope_type_info(RopeType::Default).shorthand) return &m;
  for (const auto& m : r.methods)
    if (!m.override_dict.is_null() && m.spec.type == RopeType::Default) return &m;
  return nullptr;
}

json eval_json(const EvalReport& r, const LlamaModel& model) {
  const auto& hp = model.hp;
  json j = {{"model", r.model_path},
            {"trained_context", hp.trained_context},
            {"model_shape",
             {{"layers", hp.n_layers}, {"dim", hp.dim}, {"heads", hp.n_heads}, {"kv_heads", hp.n_kv_heads},
              {"head_dim", hp.head_dim}, {"vocab", hp.vocab_size}, {"rope_theta", hp.rope_theta}}},
            {"command", r.command},
            {"seconds", r.seconds}};
  json methods = json::array();
  for (const auto& m : r.methods) methods.push_back({{"method", m.label}, {"rope_scaling", m.override_dict}});
  j["methods"] = methods;
  if (!r.endpoint.empty()) j["endpoint"] = r.endpoint;
  if (!r.ppl.empty()) {
    j["input"] = {{"file", r.input}, {"tokens", r.input_tokens}};
    j["protocol"] = {{"ctxs", r.ppl_options.ctxs},
                     {"stride", r.ppl_options.stride},
                     {"windows", r.ppl_options.stride ? "sliding" : "non-overlapping"},
                     {"bos_each_window", r.ppl_options.bos_each_window.has_value()},
                     {"bucket", r.bucket},
                     {"chunk", session_chunk(r.ppl_options.run.chunk, r.ppl_options.run.kv_window, r.ppl_options.run.kv_budget)},
                     {"kv_cache", kv_name(r.ppl_options.run.kv_cache)},
                     {"kv_window", r.ppl_options.run.kv_window},
                     {"kv_sinks", r.ppl_options.run.kv_sinks},
                     {"kv_budget", r.ppl_options.run.kv_budget},
                     {"kv_policies", kv_memory_table(r).policies},  // several: each result's method label names its own
                     {"kv_protect", r.ppl_options.run.kv_protect},
                     {"self_extend", r.ppl_options.run.self_extend.enabled()
                                         ? json{{"group", r.ppl_options.run.self_extend.group}, {"window", r.ppl_options.run.self_extend.window}}
                                         : json(nullptr)},
                     {"key_rotation", r.ppl_options.run.kv_window > 0 || r.ppl_options.run.self_extend.enabled()
                                          ? "read (keys take their cache or grouped positions)"
                                                                     : rotation_name(r.ppl_options.run.key_rotation)}};
    json results = json::array();
    for (const auto& x : r.ppl) {
      json buckets = json::array();
      for (const auto& b : nll_buckets(x, r.bucket))
        buckets.push_back({{"start", b.start}, {"end", b.end}, {"nll", b.tokens ? json(b.nll) : json(nullptr)}, {"tokens", b.tokens}});
      results.push_back({{"method", x.setting.label},
                         {"rope_scaling", x.setting.override_dict},
                         {"ctx", x.ctx},
                         {"windows", x.windows},
                         {"tokens", x.tokens},
                         {"nll", x.nll},
                         {"ppl", x.ppl},
                         {"seconds", x.seconds},
                         {"tokens_per_second", x.seconds > 0 ? json(double(x.window_tokens) / x.seconds) : json(nullptr)},
                         {"buckets", buckets}});
    }
    j["results"] = results;
    json shorts = json::array();
    const RopeSetting* base = baseline_method(r);
    for (int64_t c : short_contexts(r, model))
      for (const auto& m : r.methods) {
        const auto* x = find_ppl(r, m, c);
        const auto* b = base ? find_ppl(r, *base, c) : nullptr;
        if (!x) continue;
        json row = {{"method", m.label}, {"ctx", c}, {"ppl", x->ppl}};
        if (b) row["baseline"] = base->label, row["baseline_ppl"] = b->ppl, row["change_percent"] = percent_change(x->ppl, b->ppl);
        shorts.push_back(row);
      }
    j["short_context"] = shorts;
  }
  if (r.passkey_options) {
    const auto& o = *r.passkey_options;
    json cells = json::array(), trials = json::array();
    for (const auto& c : passkey_cells(r.passkey, o.alternatives))
      cells.push_back({{"method", c.method}, {"length", c.length}, {"depth", c.depth}, {"trials", c.trials},
                       {"exact", c.exact}, {"mean_rank", c.mean_rank}, {"rank_score", c.rank_score},
                       {"needle_nll", c.needle_nll}});
    for (const auto& t : r.passkey)
      trials.push_back({{"method", t.method}, {"length", t.length}, {"depth", t.depth}, {"trial", t.trial},
                        {"key", t.key}, {"generated", t.generated}, {"exact", t.exact}, {"rank", t.rank},
                        {"key_logprob", t.key_logprob}, {"key_tokens", t.key_tokens}});
    j["passkey"] = {{"options",
                     {{"lengths", o.lengths}, {"depths", o.depths}, {"trials", o.trials}, {"seed", o.seed},
                      {"alternatives", o.alternatives}, {"digits", o.digits},
                      {"haystack", o.haystack.empty() ? "built-in" : "file"}}},
                    {"cells", cells},
                    {"trials", trials}};
  }
  if (r.task_options) {
    const auto& o = *r.task_options;
    json names = json::array(), cells = json::array(), totals = json::array(), trials = json::array();
    for (TaskKind k : o.tasks) names.push_back(task_info(k).name);
    auto cell_json = [](const TaskCell& c) {
      return json{{"method", c.method}, {"task", task_info(c.kind).name}, {"length", c.length},
                  {"depth", std::isfinite(c.depth) ? json(c.depth) : json(nullptr)}, {"trials", c.trials},
                  {"exact", c.exact}, {"score", c.score}, {"needle_nll", c.needle_nll}};
    };
    for (const auto& c : task_cells(r.tasks)) cells.push_back(cell_json(c));
    for (const auto& c : task_cells(r.tasks, true)) totals.push_back(cell_json(c));
    for (const auto& t : r.tasks)
      trials.push_back({{"method", t.method}, {"task", task_info(t.kind).name}, {"length", t.length}, {"depth", t.depth},
                        {"trial", t.trial}, {"references", t.references}, {"generated", t.generated}, {"score", t.score},
                        {"needle_nll", t.needle_nll}});
    j["tasks"] = {{"options",
                   {{"tasks", names}, {"lengths", o.lengths}, {"depths", o.depths}, {"trials", o.trials}, {"seed", o.seed},
                    {"kv_records", o.kv_records}, {"wording", o.wording == TaskWording::Ruler ? "ruler" : "compact"},
                    {"haystack", o.haystack.empty() ? "noise" : "file"}}},
                  {"scoring", "string_match_all (RULER): share of the references found in the greedy continuation; "
                              "needle_nll: nats per answer token, teacher-forced after the prompt"},
                  {"cells", cells},
                  {"totals", totals},
                  {"trials", trials}};
  }
  if (r.passkey_options || r.task_options) {
    json rows = json::array();
    for (const auto& x : effective_context_rows(r, hp.trained_context))
      rows.push_back({{"method", x.method}, {"task", x.task}, {"metric", x.metric},
                      {"reference_length", x.result.reference_length}, {"reference", x.result.reference},
                      {"effective_length", x.result.effective ? json(x.result.effective) : json(nullptr)},
                      {"why", x.result.why.empty() ? json(nullptr) : json(x.result.why)}});
    j["effective_context"] = {{"rules", {{"accuracy", effective_json(r.effective_accuracy)},
                                         {"needle_nll", effective_json(r.effective_nll)}}},
                              {"rows", rows}};
  }
  if (!r.kv_memory.empty()) {
    json rows = json::array();
    for (const auto& x : r.kv_memory) rows.push_back({{"policy", x.policy}, {"tokens", x.tokens}, {"cached_tokens", x.rows}, {"bytes", x.bytes}});
    j["kv_memory"] = rows;
  }
  return j;
}

std::string eval_summary_text(const EvalReport& r, const LlamaModel& model) {
  std::string s;
  size_t w = 8;
  for (const auto& m : r.methods) w = std::max(w, m.label.size() + 2);
  const int64_t L = model.hp.trained_context;
  if (!r.ppl.empty()) {
    s += fmt::format("perplexity by context length (trained at {}; {} windows)\n",
                     L, r.ppl_options.stride ? fmt::format("sliding, stride {}", r.ppl_options.stride) : "non-overlapping");
    s += fmt::format("{:<{}}", "method", w);
    for (int64_t c : r.ppl_options.ctxs) s += fmt::format("{:>10}", c);
    s += "\n";
    for (const auto& m : r.methods) {
      s += fmt::format("{:<{}}", m.label, w);
      for (int64_t c : r.ppl_options.ctxs) {
        const auto* x = find_ppl(r, m, c);
        s += fmt::format("{:>10}", x ? fixed(x->ppl, 3) : "");
      }
      s += "\n";
    }
    const RopeSetting* base = baseline_method(r);
    const auto shorts = short_contexts(r, model);
    if (base && !shorts.empty()) {
      s += fmt::format("\nshort context: perplexity change against {} (≤ {} tokens)\n{:<{}}", base->label, L, "method", w);
      for (int64_t c : shorts) s += fmt::format("{:>10}", c);
      s += "\n";
      for (const auto& m : r.methods) {
        s += fmt::format("{:<{}}", m.label, w);
        for (int64_t c : shorts) {
          const auto *x = find_ppl(r, m, c), *b = find_ppl(r, *base, c);
          s += fmt::format("{:>10}", x && b ? fmt::format("{:+.2f}%", percent_change(x->ppl, b->ppl)) : "");
        }
        s += "\n";
      }
    }
  }
  if (r.passkey_options) {
    const auto& o = *r.passkey_options;
    const auto cells = passkey_cells(r.passkey, o.alternatives);
    s += fmt::format("\npasskey: exact retrievals / prompts, rank score (1 = key most likely of {}, 0.5 = chance) and "
                     "needle NLL (nats per key token), over {} depths × {} trials\n{:<{}}",
                     o.alternatives + 1, o.depths.size(), o.trials, "method", w);
    for (int64_t l : o.lengths) s += fmt::format("{:>20}", l);
    s += "\n";
    for (const auto& m : r.methods) {
      s += fmt::format("{:<{}}", m.label, w);
      for (int64_t l : o.lengths) {
        const PasskeyCell t = passkey_total(cells, m.label, l);
        s += fmt::format("{:>20}", t.trials ? fmt::format("{}/{} {:.2f} {:.3f}", t.exact, t.trials, t.rank_score, t.needle_nll) : "");
      }
      s += "\n";
    }
  }
  if (r.task_options) {
    const auto& o = *r.task_options;
    const auto totals = task_cells(r.tasks, true);
    s += fmt::format("\ntasks (RULER-style): score (share of the references found, 1 = all) and needle NLL (nats per "
                     "answer token), over {} depths × {} trials\n{:<{}}{:<17}",
                     o.depths.size(), o.trials, "method", w, "task");
    for (int64_t l : o.lengths) s += fmt::format("{:>16}", l);
    s += "\n";
    for (const auto& m : r.methods)
      for (TaskKind k : o.tasks) {
        s += fmt::format("{:<{}}{:<17}", m.label, w, task_info(k).name);
        for (int64_t l : o.lengths) {
          const auto it = std::find_if(totals.begin(), totals.end(), [&](const TaskCell& c) {
            return c.method == m.label && c.kind == k && c.length == l;
          });
          s += fmt::format("{:>16}", it != totals.end() ? fmt::format("{:.2f} {:.3f}", it->score, it->needle_nll) : "");
        }
        s += "\n";
      }
  }
  if (r.passkey_options || r.task_options) {
    const auto rows = effective_context_rows(r, model.hp.trained_context);
    s += fmt::format("\neffective context (longest tested length within {:.2f} of the score at the trained length, or "
                     "within +{:.2f} nats of its needle NLL)\n{:<{}}{:<17}{:>12}{:>12}\n",
                     r.effective_accuracy.threshold, r.effective_nll.threshold, "method", w, "task", "accuracy", "needle NLL");
    for (size_t i = 0; i + 1 < rows.size(); i += 2) {
      auto cell = [](const EffectiveContext& e) { return e.effective ? std::to_string(e.effective) : std::string("—"); };
      s += fmt::format("{:<{}}{:<17}{:>12}{:>12}\n", rows[i].method, w, rows[i].task, cell(rows[i].result),
                       cell(rows[i + 1].result));
    }
    s += "(— by accuracy: the method scores below " + fixed(r.effective_accuracy.reference_bound, 2) +
         " at the trained length; by needle NLL: worse than a uniform guess (" + fixed(r.effective_nll.reference_bound, 2) +
         " nats) there)\n";
  }
  if (!r.kv_memory.empty()) {
    const KvMemoryTable t = kv_memory_table(r);
    size_t pw = 8;
    for (const auto& p : t.policies) pw = std::max(pw, p.size() + 2);
    s += fmt::format("\nKV cache the sessions allocate (MiB) by policy and prompt length\n{:<{}}", "policy", pw);
    for (int64_t l : t.lengths) s += fmt::format("{:>10}", l);
    s += "\n";
    for (const auto& p : t.policies) {
      s += fmt::format("{:<{}}", p, pw);
      for (int64_t l : t.lengths) {
        const KvMemoryRow* x = t.find(r, p, l);
        s += fmt::format("{:>10}", x ? fixed(double(x->bytes) / 1048576.0, 3) : "");
      }
      s += "\n";
    }
  }
  return s;
}

}  // namespace ropescale
