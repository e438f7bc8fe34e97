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
#include "ropescale/rope/rope_types.h"

namespace ropescale {

namespace {

using json = nlohmann::json;

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
struct Style {
  std::string color, dash;
};
Style method_style(const RopeSetting& m, size_t index) {
  (void)index;
  const bool own = m.override_dict.is_null();  // "model": the file's own setting
  Style s{own ? "#555555" : std::string(m.info().colour), ""};
  const double factor = m.spec.type == RopeType::Default ? 0 : m.spec.factor;
  if (factor > 2.5 && factor <= 5) s.dash = "7 3";
  else if (factor > 5 && factor <= 10) s.dash = "3 2";
  else if (factor > 10) s.dash = "9 3 2 3";
  return s;
}

std::string fixed(double v, int digits) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "—"; }

std::string kv_name(KvType k) { return k == KvType::F16 ? "f16" : "f32"; }
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
  PasskeyCell t{method, length, 0.0, 0, 0, 0.0, 0.0};
  for (const auto& c : cells)
    if (c.method == method && c.length == length)
      t.exact += c.exact, t.trials += c.trials, t.rank_score += c.rank_score * c.trials;
  if (t.trials) t.rank_score /= t.trials;
  return t;
}

double percent_change(double x, double base) { return (x / base - 1.0) * 100.0; }

}  // namespace

const RopeSetting* baseline_method(const EvalReport& r) {
  for (const auto& m : r.methods)
    if (m.label == "none") return &m;
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
  if (!r.ppl.empty()) {
    j["input"] = {{"file", r.input}, {"tokens", r.input_tokens}};
    j["protocol"] = {{"ctxs", r.ppl_options.ctxs},
                     {"stride", r.ppl_options.stride},
                     {"windows", r.ppl_options.stride ? "sliding" : "non-overlapping"},
                     {"bucket", r.bucket},
                     {"chunk", r.ppl_options.run.chunk},
                     {"kv_cache", kv_name(r.ppl_options.run.kv_cache)},
                     {"key_rotation", rotation_name(r.ppl_options.run.key_rotation)}};
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
                       {"exact", c.exact}, {"mean_rank", c.mean_rank}, {"rank_score", c.rank_score}});
    for (const auto& t : r.passkey)
      trials.push_back({{"method", t.method}, {"length", t.length}, {"depth", t.depth}, {"trial", t.trial},
                        {"key", t.key}, {"generated", t.generated}, {"exact", t.exact}, {"rank", t.rank},
                        {"key_logprob", t.key_logprob}});
    j["passkey"] = {{"options",
                     {{"lengths", o.lengths}, {"depths", o.depths}, {"trials", o.trials}, {"seed", o.seed},
                      {"alternatives", o.alternatives}, {"digits", o.digits},
                      {"haystack", o.haystack.empty() ? "built-in" : "file"}}},
                    {"cells", cells},
                    {"trials", trials}};
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
    s += fmt::format("\npasskey: exact retrievals / prompts and rank score (1 = key most likely of {}, 0.5 = chance), "
                     "over {} depths × {} trials\n{:<{}}",
                     o.alternatives + 1, o.depths.size(), o.trials, "method", w);
    for (int64_t l : o.lengths) s += fmt::format("{:>14}", l);
    s += "\n";
    for (const auto& m : r.methods) {
      s += fmt::format("{:<{}}", m.label, w);
      for (int64_t l : o.lengths) {
        const PasskeyCell t = passkey_total(cells, m.label, l);
        s += fmt::format("{:>14}", t.trials ? fmt::format("{}/{} {:.2f}", t.exact, t.trials, t.rank_score) : "");
      }
      s += "\n";
    }
  }
  return s;
}

std::string eval_report_html(const EvalReport& r, const LlamaModel& model) {
  const auto& hp = model.hp;
  const int64_t L = hp.trained_context;
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>ropescale evaluation — " +
       html_escape(r.model_path) + "</title>\n<style>\n"
       "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}\n"
       "h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}\n"
       "table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}\n"
       "th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}\n"
       ".bad{color:#b00020;font-weight:600}.good{color:#1b7a37}.best{font-weight:700}\n"
       "svg{margin:6px 10px 6px 0}svg .title{font-weight:600;font-size:14px}svg .tick,svg .legend{font-size:11px;fill:#333}\n"
       "svg .label{font-size:12px;fill:#333}svg .cell{font-size:10px}svg .grid{stroke:#ececec}\n"
       "svg .frame{fill:none;stroke:#999}svg .marker{stroke:#b00020;stroke-dasharray:4 3}\n"
       ".maps{display:flex;flex-wrap:wrap}pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}\n"
       "details{margin:6px 0}summary{cursor:pointer;font-weight:600}\n"
       "</style></head><body>\n";
  h += "<h1>ropescale evaluation</h1>\n<p>Model <code>" + html_escape(r.model_path) +
       fmt::format("</code>: {} layers, dim {}, {} heads / {} KV heads, head_dim {} ({} rotary pairs), vocabulary {}, "
                   "RoPE θ = {}, <b>trained at {} tokens</b>.</p>\n",
                   hp.n_layers, hp.dim, hp.n_heads, hp.n_kv_heads, hp.head_dim, hp.head_dim / 2, hp.vocab_size,
                   hp.rope_theta, L);
  if (!r.command.empty()) h += "<p>Command: <code>" + html_escape(r.command) + "</code></p>\n";
  h += fmt::format("<p>Run time {:.0f} s.</p>\n", r.seconds);

  std::vector<Style> styles;
  for (size_t i = 0; i < r.methods.size(); ++i) styles.push_back(method_style(r.methods[i], i));

  if (!r.ppl.empty()) {
    const auto& ctxs = r.ppl_options.ctxs;
    h += "<h2>Perplexity against context length</h2>\n";
    h += fmt::format("<p>Input <code>{}</code> ({} tokens); {} windows from an empty cache; a token at window "
                     "position t is predicted from positions &lt; t. Prefill chunk {}, KV cache {}, key rotation {}.</p>\n",
                     html_escape(r.input), r.input_tokens,
                     r.ppl_options.stride ? fmt::format("sliding (stride {})", r.ppl_options.stride) : "non-overlapping",
                     r.ppl_options.run.chunk, kv_name(r.ppl_options.run.kv_cache),
                     html_escape(rotation_name(r.ppl_options.run.key_rotation)));
    // Table, best per column in bold, baseline-relative colouring past L.
    h += "<table><tr><th>method</th>";
    for (int64_t c : ctxs) h += fmt::format("<th>{}{}</th>", c, c > L ? fmt::format(" ({:g}×)", double(c) / L) : "");
    h += "<th>scored tokens</th></tr>\n";
    std::map<int64_t, double> best;
    for (const auto& x : r.ppl) best[x.ctx] = best.count(x.ctx) ? std::min(best[x.ctx], x.ppl) : x.ppl;
    for (const auto& m : r.methods) {
      h += "<tr><td>" + html_escape(m.label) + "</td>";
      std::string tokens;
      for (int64_t c : ctxs) {
        const auto* x = find_ppl(r, m, c);
        h += x ? fmt::format("<td{}>{}</td>", x->ppl == best[c] ? " class=\"best\"" : "", fixed(x->ppl, 3)) : "<td></td>";
        if (x) tokens += (tokens.empty() ? "" : " / ") + std::to_string(x->tokens);
      }
      h += "<td>" + tokens + "</td></tr>\n";
    }
    h += "</table>\n";
    LinePlot pc;
    pc.title = "Perplexity against context length";
    pc.x_label = "context length (tokens)";
    pc.y_label = "perplexity (log scale)";
    pc.log_x = pc.log_y = true;
    pc.x_ticks.assign(ctxs.begin(), ctxs.end());
    pc.x_marks = {{double(L), "trained"}};
    for (size_t i = 0; i < r.methods.size(); ++i) {
      PlotSeries s{r.methods[i].label, styles[i].color, styles[i].dash, {}};
      for (int64_t c : ctxs)
        if (const auto* x = find_ppl(r, r.methods[i], c)) s.points.push_back({double(c), x->ppl});
      pc.series.push_back(std::move(s));
    }
    h += render_svg(pc);

    h += "<h2>NLL by position</h2>\n<p>Mean negative log-likelihood (nats per token) of the tokens at each window "
         "position, in buckets of " + std::to_string(r.bucket) +
         " positions. The red line marks the trained length: past it plain RoPE rises; a working method stays flat.</p>\n";
    for (int64_t c : ctxs) {
      LinePlot pp;
      pp.title = fmt::format("NLL by position, context {}", c);
      pp.x_label = "position in window (tokens)";
      pp.y_label = "NLL (nats / token)";
      if (c > L) pp.x_marks = {{double(L), "trained"}};
      for (size_t i = 0; i < r.methods.size(); ++i) {
        const auto* x = find_ppl(r, r.methods[i], c);
        if (!x) continue;
        PlotSeries s{r.methods[i].label, styles[i].color, styles[i].dash, {}};
        for (const auto& b : nll_buckets(*x, r.bucket)) s.points.push_back({0.5 * double(b.start + b.end), b.nll});
        pp.series.push_back(std::move(s));
      }
      h += render_svg(pp);
    }

    const RopeSetting* base = baseline_method(r);
    const auto shorts = short_contexts(r, model);
    h += "<h2>Short-context regression</h2>\n";
    if (!base || shorts.empty()) {
      h += "<p>Not measured: the run has no unscaled baseline (<code>none</code>) or no context length ≤ the trained "
           "length.</p>\n";
    } else {
      h += "<p>Each method at lengths within the trained context, against " + html_escape(base->label) +
           ". A static factor that hurts short prompts shows here; dynamic methods should match the baseline. "
           "Changes above +1 % are marked.</p>\n<table><tr><th>method</th>";
      for (int64_t c : shorts) h += fmt::format("<th>ppl @ {}</th><th>change</th>", c);
      h += "</tr>\n";
      for (const auto& m : r.methods) {
        h += "<tr><td>" + html_escape(m.label) + "</td>";
        for (int64_t c : shorts) {
          const auto *x = find_ppl(r, m, c), *b = find_ppl(r, *base, c);
          if (!x || !b) {
            h += "<td></td><td></td>";
            continue;
          }
          const double d = percent_change(x->ppl, b->ppl);
          h += fmt::format("<td>{}</td><td class=\"{}\">{:+.2f} %</td>", fixed(x->ppl, 3),
                           d > 1.0 ? "bad" : d < -1.0 ? "good" : "", d);
        }
        h += "</tr>\n";
      }
      h += "</table>\n";
    }
  }

  if (r.passkey_options) {
    const auto& o = *r.passkey_options;
    const auto cells = passkey_cells(r.passkey, o.alternatives);
    h += "<h2>Passkey retrieval</h2>\n";
    h += fmt::format("<p>{} filler, needle \"The pass key is NNNNN. Remember it. NNNNN is the pass key.\" at each depth, "
                     "{} trial(s) per cell, seed {}. Colour: rank score — the true key's log-probability rank among {} "
                     "candidates, 1 = ranked first, 0.5 = chance. Text: exact greedy retrievals / prompts.</p>\n",
                     o.haystack.empty() ? "Built-in" : "File", o.trials, o.seed, o.alternatives + 1);
    h += "<div class=\"maps\">\n";
    for (const auto& m : r.methods) {
      Heatmap hm;
      hm.title = m.label;
      hm.x_label = "prompt length (tokens)";
      hm.y_label = "needle depth";
      for (int64_t l : o.lengths) hm.columns.push_back(std::to_string(l));
      for (double d : o.depths) {
        hm.rows.push_back(fmt::format("{:.0f}%", d * 100));
        std::vector<double> vals;
        std::vector<std::string> texts;
        for (int64_t l : o.lengths) {
          const auto it = std::find_if(cells.begin(), cells.end(), [&](const PasskeyCell& c) {
            return c.method == m.label && c.length == l && c.depth == d;
          });
          vals.push_back(it != cells.end() ? it->rank_score : std::nan(""));
          texts.push_back(it != cells.end() ? fmt::format("{}/{}", it->exact, it->trials) : "");
        }
        hm.values.push_back(vals);
        hm.text.push_back(texts);
      }
      h += render_svg(hm);
    }
    h += "</div>\n<table><tr><th>method</th>";
    for (int64_t l : o.lengths) h += fmt::format("<th>{} exact</th><th>{} rank score</th>", l, l);
    h += "</tr>\n";
    for (const auto& m : r.methods) {
      h += "<tr><td>" + html_escape(m.label) + "</td>";
      for (int64_t l : o.lengths) {
        const PasskeyCell t = passkey_total(cells, m.label, l);
        h += t.trials ? fmt::format("<td>{}/{}</td><td>{:.2f}</td>", t.exact, t.trials, t.rank_score) : "<td></td><td></td>";
      }
      h += "</tr>\n";
    }
    h += "</table>\n";
  }

  h += "<h2>Settings and exports</h2>\n<p>Each method as the override JSON ropescale ran, and the same setting for "
       "Hugging Face, vLLM and llama.cpp (<code>ropescale export</code>).</p>\n";
  int64_t reach = L;
  for (int64_t c : r.ppl_options.ctxs) reach = std::max(reach, c);
  if (r.passkey_options)
    for (int64_t l : r.passkey_options->lengths) reach = std::max(reach, l);
  for (const auto& m : r.methods) {
    h += "<details><summary>" + html_escape(m.label) + "</summary>\n<pre>" +
         html_escape(m.override_dict.is_null() ? "(the model file's own setting)" : safe_dump(m.override_dict, 2)) +
         "</pre>\n";
    const json ex = method_exports(m, reach);
    if (ex.contains("error")) {
      h += "<p class=\"bad\">" + html_escape(ex["error"].get<std::string>()) + "</p>\n";
    } else {
      for (const auto& [target, e] : ex.items()) {
        h += "<p><b>" + html_escape(target) + "</b>" + (e["exact"].get<bool>() ? "" : " (not exact)") + "</p><pre>" +
             html_escape(e["text"].get<std::string>()) + "</pre>\n";
        for (const auto& n : e["notes"]) h += "<p>" + html_escape(n.get<std::string>()) + "</p>\n";
      }
    }
    h += "</details>\n";
  }
  h += "</body></html>\n";
  return h;
}

}  // namespace ropescale
