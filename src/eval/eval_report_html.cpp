// The HTML report, one function per section; the numbers and the joins it
// shares with the JSON contract and the terminal tables are eval_report_parts.h.
#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/core.h>

#include "eval_report_parts.h"
#include "ropescale/config/json_text.h"
#include "ropescale/eval/eval_report.h"
#include "ropescale/eval/svg_plot.h"

namespace ropescale {

using json = nlohmann::json;
using namespace report;

namespace {

// The page head, the styles and the model's description.
std::string page_head(const EvalReport& r, const LlamaModel& model) {
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
  if (!r.endpoint.empty())
    h += "<p>Evaluated through the endpoint <code>" + html_escape(r.endpoint) +
         "</code> (the model file above describes it; its weights were not loaded here).</p>\n";
  if (!r.command.empty()) h += "<p>Command: <code>" + html_escape(r.command) + "</code></p>\n";
  h += fmt::format("<p>Run time {:.0f} s.</p>\n", r.seconds);

  return h;
}

// Perplexity by method × context: the table (best per column in bold) and the plot.
std::string perplexity_section(const EvalReport& r, int64_t L, const std::vector<Style>& styles) {
  std::string h;
  const auto& ctxs = r.ppl_options.ctxs;
  h += "<h2>Perplexity against context length</h2>\n";
  h += fmt::format("<p>Input <code>{}</code> ({} tokens); {} windows from an empty cache; a token at window "
                   "position t is predicted from positions &lt; t. Prefill chunk {}, KV cache {}, key rotation {}.</p>\n",
                   html_escape(r.input), r.input_tokens,
                   r.ppl_options.stride ? fmt::format("sliding (stride {})", r.ppl_options.stride) : "non-overlapping",
                   r.ppl_options.run.chunk,
                   kv_memory_table(r).policies.size() > 1 ? "as each method's label names it" : kv_policy_label(r.ppl_options.run),
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

  return h;
}

// NLL by window position, one plot per context length.
std::string nll_section(const EvalReport& r, int64_t L, const std::vector<Style>& styles) {
  const auto& ctxs = r.ppl_options.ctxs;
  std::string h;
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

  return h;
}

// Each method against the unscaled baseline at lengths within the trained context.
std::string short_context_section(const EvalReport& r, const LlamaModel& model) {
  std::string h;
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
  return h;
}

// Passkey heatmaps (rank score by length × depth) and the exact/rank table.
std::string passkey_section(const EvalReport& r) {
  std::string h;
  const auto& o = *r.passkey_options;
  const auto cells = passkey_cells(r.passkey, o.alternatives);
  h += "<h2>Passkey retrieval</h2>\n";
  h += fmt::format("<p>{} filler, needle \"The pass key is NNNNN. Remember it. NNNNN is the pass key.\" at each depth, "
                   "{} trial(s) per cell, seed {}. Colour: rank score — the true key's log-probability rank among {} "
                   "candidates, 1 = ranked first, 0.5 = chance. Text: exact greedy retrievals / prompts. Needle NLL: the key's "
                   "negative log-likelihood per token after the haystack, teacher-forced (LongRoPE2's needle "
                   "perplexity is its exponential).</p>\n",
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
  for (int64_t l : o.lengths) h += fmt::format("<th>{} exact</th><th>{} rank score</th><th>{} needle NLL</th>", l, l, l);
  h += "</tr>\n";
  for (const auto& m : r.methods) {
    h += "<tr><td>" + html_escape(m.label) + "</td>";
    for (int64_t l : o.lengths) {
      const PasskeyCell t = passkey_total(cells, m.label, l);
      h += t.trials ? fmt::format("<td>{}/{}</td><td>{:.2f}</td><td>{:.3f}</td>", t.exact, t.trials, t.rank_score, t.needle_nll)
                    : "<td></td><td></td><td></td>";
    }
    h += "</tr>\n";
  }
  h += "</table>\n";
  return h;
}

// Each method's override JSON and its exports to HF, vLLM and llama.cpp.
std::string exports_section(const EvalReport& r, int64_t L) {
  std::string h;
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
  return h;
}

// The RULER-style tasks: a table of score and needle NLL per method × task × length, and the
// depth curves (needle NLL against depth, and accuracy where any method scores), one plot per
// task and length.
std::string tasks_section(const EvalReport& r, const std::vector<Style>& styles) {
  const auto& o = *r.task_options;
  const auto cells = task_cells(r.tasks), totals = task_cells(r.tasks, true);
  std::string h = "<h2>Retrieval tasks (RULER-style)</h2>\n";
  h += fmt::format("<p>{} haystack, {} trial(s) per length × depth, seed {}. Score: RULER's string_match_all, the share "
                   "of the references found in the greedy continuation (1 = all). Needle NLL: each reference "
                   "teacher-forced after the prompt, nats per token (lower is better).</p>\n<ul>\n",
                   o.haystack.empty() ? "Noise" : "File", o.trials, o.seed);
  for (TaskKind k : o.tasks)
    h += "<li><b>" + std::string(task_info(k).name) + "</b>: " + html_escape(task_info(k).summary) + "</li>\n";
  h += "</ul>\n<table><tr><th>method</th><th>task</th>";
  for (int64_t l : o.lengths) h += fmt::format("<th>{} score</th><th>{} needle NLL</th>", l, l);
  h += "</tr>\n";
  for (const auto& m : r.methods)
    for (TaskKind k : o.tasks) {
      h += "<tr><td>" + html_escape(m.label) + "</td><td>" + task_info(k).name + "</td>";
      for (int64_t l : o.lengths) {
        const auto it = std::find_if(totals.begin(), totals.end(), [&](const TaskCell& c) {
          return c.method == m.label && c.kind == k && c.length == l;
        });
        h += it != totals.end() ? fmt::format("<td>{:.2f}</td><td>{:.3f}</td>", it->score, it->needle_nll) : "<td></td><td></td>";
      }
      h += "</tr>\n";
    }
  h += "</table>\n";
  if (o.depths.size() < 2) return h;
  h += "<h3>Depth curves</h3>\n<p>Each task at each length: the metric against the depth of the asked needle "
       "(0 = start of the haystack, 1 = end) — the \"lost in the middle\" curve.</p>\n";
  for (TaskKind k : o.tasks) {
    const bool any_score = std::any_of(cells.begin(), cells.end(), [&](const TaskCell& c) { return c.kind == k && c.score > 0; });
    h += "<div class=\"maps\">\n";
    for (int64_t l : o.lengths)
      for (int metric = any_score ? 0 : 1; metric < 2; ++metric) {
        LinePlot p;
        p.title = fmt::format("{} at {} tokens", task_info(k).name, l);
        p.x_label = "needle depth";
        p.y_label = metric == 0 ? "score" : "needle NLL (nats / token)";
        p.width = 380;
        p.height = 260;
        for (size_t i = 0; i < r.methods.size(); ++i) {
          PlotSeries s{r.methods[i].label, styles[i].color, styles[i].dash, {}};
          for (const auto& c : cells)
            if (c.method == r.methods[i].label && c.kind == k && c.length == l)
              s.points.push_back({c.depth, metric == 0 ? c.score : c.needle_nll});
          if (!s.points.empty()) p.series.push_back(std::move(s));
        }
        h += render_svg(p);
      }
    h += "</div>\n";
  }
  return h;
}

// The KV cache each policy allocates by prompt length.
std::string kv_memory_section(const EvalReport& r) {
  const KvMemoryTable t = kv_memory_table(r);
  std::string h = "<h2>KV memory</h2>\n<p>The K and V cache the runtime's sessions allocate (the count they allocate "
                  "by), in MiB, with the tokens it holds.</p>\n<table><tr><th>policy</th>";
  for (int64_t l : t.lengths) h += fmt::format("<th>{} tokens</th>", l);
  h += "</tr>\n";
  for (const auto& p : t.policies) {
    h += "<tr><td>" + html_escape(p) + "</td>";
    for (int64_t l : t.lengths) {
      const KvMemoryRow* x = t.find(r, p, l);
      h += x ? fmt::format("<td>{} ({} cached)</td>", fixed(double(x->bytes) / 1048576.0, 3), x->rows) : "<td></td>";
    }
    h += "</tr>\n";
  }
  return h + "</table>\n";
}

std::string effective_context_section(const EvalReport& r, int64_t L) {
  const auto rows = effective_context_rows(r, L);
  std::string h = "<h2>Effective context</h2>\n";
  h += fmt::format("<p>The longest tested length up to which a task stays within {:.2f} of its score at the trained "
                   "length ({} tokens), and within +{:.2f} nats of its needle NLL there (RULER's effective length, "
                   "relative to the model's own short-context score). None by accuracy when the method scores below "
                   "{:.2f} at the trained length, by needle NLL when it is worse than a uniform guess there (hover "
                   "for why).</p>\n<table><tr><th>method</th><th>task</th><th>by accuracy</th>"
                   "<th>by needle NLL</th></tr>\n",
                   r.effective_accuracy.threshold, L, r.effective_nll.threshold, r.effective_accuracy.reference_bound);
  auto cell = [](const EffectiveContext& e) {
    return e.effective ? "<td>" + std::to_string(e.effective) + "</td>" : "<td title=\"" + html_escape(e.why) + "\">—</td>";
  };
  for (size_t i = 0; i + 1 < rows.size(); i += 2)
    h += "<tr><td>" + html_escape(rows[i].method) + "</td><td>" + rows[i].task + "</td>" + cell(rows[i].result) +
         cell(rows[i + 1].result) + "</tr>\n";
  return h + "</table>\n";
}

}  // namespace

std::string eval_report_html(const EvalReport& r, const LlamaModel& model) {
  const int64_t L = model.hp.trained_context;
  std::vector<Style> styles;
  for (const auto& m : r.methods) styles.push_back(method_style(m));
  std::string h = page_head(r, model);
  if (!r.ppl.empty()) h += perplexity_section(r, L, styles) + nll_section(r, L, styles) + short_context_section(r, model);
  if (r.passkey_options) h += passkey_section(r);
  if (r.task_options) h += tasks_section(r, styles);
  if (r.passkey_options || r.task_options) h += effective_context_section(r, L);
  if (!r.kv_memory.empty()) h += kv_memory_section(r);
  h += exports_section(r, L);
  h += "</body></html>\n";
  return h;
}

}  // namespace ropescale
