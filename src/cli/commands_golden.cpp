// golden record | compare: store an evaluation with the exact inputs that made
// it, and re-run it later against the same model, another model, or an
// endpoint — exit 1 when a gate fails (the command for CI or a weekly cron).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#include <fmt/core.h>

#include "commands.h"
#include "eval_run.h"
#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/eval/golden.h"
#include "ropescale/eval/svg_plot.h"

namespace ropescale::cli {

using nlohmann::json;

namespace {

constexpr int kGoldenVersion = 1;

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct GateFlags {
  GoldenGates gates;
  bool short_set = false, long_set = false, nll_set = false, acc_set = false;
};

void add_gate_flags(CLI::App* c, GateFlags& g) {
  c->add_option("--max-short-ppl-rise", g.gates.short_ppl_percent, "Gate: perplexity rise allowed at ctx ≤ trained, %")
      ->capture_default_str()->check(CLI::NonNegativeNumber)->each([&g](const std::string&) { g.short_set = true; });
  c->add_option("--max-long-ppl-rise", g.gates.long_ppl_percent, "Gate: perplexity rise allowed past the trained length, %")
      ->capture_default_str()->check(CLI::NonNegativeNumber)->each([&g](const std::string&) { g.long_set = true; });
  c->add_option("--max-needle-nll-rise", g.gates.needle_nll, "Gate: needle NLL rise allowed, nats per answer token")
      ->capture_default_str()->check(CLI::NonNegativeNumber)->each([&g](const std::string&) { g.nll_set = true; });
  c->add_option("--max-accuracy-drop", g.gates.accuracy_points, "Gate: accuracy drop allowed (passkey exact, task score), points")
      ->capture_default_str()->check(CLI::NonNegativeNumber)->each([&g](const std::string&) { g.acc_set = true; });
}

// The gate table, before/after side by side, and perplexity by context of both runs.
std::string compare_html(const std::string& golden_path, const std::vector<GateCheck>& checks, const json& before,
                         const json& after) {
  int failed = 0;
  for (const auto& c : checks) failed += !c.pass;
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>ropescale golden compare</title>\n<style>"
      "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222}"
      "table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}"
      "td:first-child,td:nth-child(2),th:first-child{text-align:left}.fail{color:#b00020;font-weight:600}.pass{color:#1b7a37}"
      "</style></head><body>\n";
  h += "<h1>Golden compare: " + std::string(failed ? "<span class=\"fail\">FAIL</span>" : "<span class=\"pass\">pass</span>") +
       "</h1>\n<p>Golden set <code>" + html_escape(golden_path) + "</code>, recorded " +
       html_escape(before.value("recorded", "")) + " on <code>" + html_escape(before.value("target", "")) +
       "</code>; this run on <code>" + html_escape(after.value("target", "")) + "</code>. " +
       fmt::format("{} gates, {} failed.", checks.size(), failed) + "</p>\n";
  h += "<table><tr><th>gate</th><th>method</th><th>length</th><th>golden</th><th>now</th><th>change</th><th>allowed</th>"
       "<th>verdict</th></tr>\n";
  for (const auto& c : checks)
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.4f}</td><td>{}</td><td>{}</td><td>{}{:.2f} {}</td>"
                     "<td class=\"{}\">{}</td></tr>\n",
                     html_escape(c.kind), html_escape(c.method), c.length, c.before,
                     std::isfinite(c.after) ? fmt::format("{:.4f}", c.after) : "—",
                     std::isfinite(c.after) ? fmt::format("{:+.2f} {}", c.change, c.unit) : "—",
                     c.unit == "points" ? "−" : "+", c.limit, c.unit, c.pass ? "pass" : "fail",
                     c.pass ? "pass" : html_escape("FAIL: " + c.why));
  h += "</table>\n";
  // Perplexity against context, golden dashed and now solid, one colour per method.
  const json& gr = before.at("results_json");
  const json& nr = after.at("results_json");
  if (gr.contains("results") && !gr["results"].empty()) {
    LinePlot p;
    p.title = "Perplexity against context: golden (dashed) and now (solid)";
    p.x_label = "context (tokens)";
    p.y_label = "perplexity";
    p.log_x = true;
    const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
    std::vector<std::string> methods;
    for (const json& m : gr.value("methods", json::array())) methods.push_back(m.value("method", ""));
    for (size_t i = 0; i < methods.size(); ++i)
      for (int run = 0; run < 2; ++run) {
        PlotSeries s{methods[i] + (run == 0 ? " (golden)" : " (now)"), colours[i % 8], run == 0 ? "6 3" : "", {}};
        for (const json& x : (run == 0 ? gr : nr).value("results", json::array()))
          if (x.value("method", "") == methods[i]) s.points.push_back({x.value("ctx", 0.0), x.value("ppl", 0.0)});
        if (!s.points.empty()) p.series.push_back(std::move(s));
      }
    h += render_svg(p);
  }
  return h + "</body></html>\n";
}

}  // namespace

void add_golden_commands(CLI::App& app, int& exit_code) {
  auto* golden = app.add_subcommand("golden", "Golden sets: record an evaluation with its exact inputs, re-run and gate it");
  golden->require_subcommand(1);
  {
    auto o = std::make_shared<EvalOptions>();
    auto out = std::make_shared<std::string>();
    auto g = std::make_shared<GateFlags>();
    auto* c = golden->add_subcommand("record", "Run the suite (perplexity with --text/--ids, passkey, --tasks) and store "
                                               "results, inputs and gates as a golden set");
    add_eval_options(c, *o, {true, true, true}, true);
    c->add_option("--out", *out, "The golden file to write")->required();
    add_gate_flags(c, *g);
    c->callback([o, out, g, &exit_code] {
      const EvalParts parts{!o->text.empty() || !o->ids.empty(), true, !o->tasks.empty()};
      const EvalRun run = run_evaluation(*o, parts);
      write_evaluation(*o, run);
      const json doc = {{"ropescale_golden", kGoldenVersion},
                        {"recorded", utc_now()},
                        {"command", command_line()},
                        {"target", run.report.endpoint.empty() ? o->model : run.report.endpoint},
                        {"options", eval_options_json(*o, parts)},
                        {"gates", gates_json(g->gates)},
                        {"results_json", eval_json(run.report, run.model)}};
      write_output(*out, safe_dump(doc, 2) + "\n", "golden set");
      exit_code = 0;
    });
  }
  {
    auto file = std::make_shared<std::string>();
    auto over = std::make_shared<EvalOptions>();
    auto g = std::make_shared<GateFlags>();
    auto paths = std::make_shared<std::pair<std::string, std::string>>();  // --json, --report
    auto quiet = std::make_shared<bool>(false);
    auto* c = golden->add_subcommand("compare", "Re-run a golden set (on its model, or --model / --endpoint) and check "
                                                "its gates: exit 1 when one fails");
    c->add_option("golden", *file, "The golden file (golden record --out)")->required();
    c->add_option("--model", over->model, "Evaluate this model instead (with --endpoint: the served model's config)");
    c->add_option("--endpoint", over->endpoint.url, "Evaluate this endpoint instead of the runtime");
    auto runtime = std::make_shared<bool>(false);
    c->add_flag("--runtime", *runtime, "Run the model here even if the golden set was recorded through an endpoint")
        ->excludes("--endpoint");
    c->add_option("--api-key", over->endpoint.api_key, "Bearer token for the endpoint (default: $OPENAI_API_KEY)")
        ->envname("OPENAI_API_KEY");
    c->add_option("--served-model", over->endpoint.served_model, "The model name to request");
    c->add_option("--json", paths->first, "Write the gates and both runs as JSON to FILE ('-' = stdout)");
    c->add_option("--report", paths->second, "Write an HTML page: the gates, golden and now side by side");
    c->add_flag("--quiet", *quiet, "No tables on stdout");
    add_gate_flags(c, *g);
    c->callback([file, over, g, paths, quiet, runtime, &exit_code] {
      const json doc = json::parse(read_file_text(*file), nullptr, false);
      if (doc.is_discarded() || !doc.is_object() || !doc.contains("ropescale_golden"))
        throw_unreadable(*file, "is not a golden set (ropescale golden record --out writes one)");
      if (doc["ropescale_golden"] != kGoldenVersion)
        throw_unreadable(*file, "ropescale_golden " + doc["ropescale_golden"].dump() + " is not a version this build reads (1)");
      EvalParts parts;
      EvalOptions o;
      GoldenGates gates;
      try {
        o = eval_options_from_json(doc.at("options"), parts);
        gates = gates_from_json(doc.value("gates", json::object()));
        if (!doc.contains("results_json") || !doc["results_json"].is_object()) throw std::invalid_argument("no results_json");
      } catch (const std::exception& e) {
        throw_unreadable(*file, e.what());
      }
      if (g->short_set) gates.short_ppl_percent = g->gates.short_ppl_percent;
      if (g->long_set) gates.long_ppl_percent = g->gates.long_ppl_percent;
      if (g->nll_set) gates.needle_nll = g->gates.needle_nll;
      if (g->acc_set) gates.accuracy_points = g->gates.accuracy_points;
      // The same inputs, byte for byte.
      for (const auto& [path, key] : {std::pair{o.text, "text_sha256"}, {o.ids, "ids_sha256"}, {o.haystack, "haystack_sha256"}}) {
        const std::string recorded = doc["options"].value(key, "");
        if (!path.empty() && file_sha256(path) != recorded)
          throw_unreadable(path, fmt::format("changed since the golden set was recorded (sha256 {}, recorded {}): "
                                             "record a new golden set",
                                             file_sha256(path), recorded));
      }
      if (!over->model.empty()) o.model = over->model;
      if (!over->endpoint.url.empty()) o.endpoint.url = over->endpoint.url;
      // The same perplexity windows on either side: an endpoint's start with the server's BOS.
      const json& protocol = doc["results_json"].value("protocol", json::object());
      const bool bos_windows = protocol.is_object() && protocol.value("bos_each_window", false);
      if (*runtime) {
        o.endpoint = EndpointOptions{};  // its --endpoint-rope settings stay the methods
        o.window_bos = o.window_bos || (bos_windows && !o.text.empty());
      }
      if (!o.endpoint.url.empty() && parts.ppl && !bos_windows)
        std::fprintf(stderr, "ropescale: warning: the golden perplexity windows do not start with BOS and an "
                             "endpoint's do; its perplexity gates compare different windows (record with --window-bos)\n");
      if (!o.endpoint.url.empty()) o.window_bos = false;  // the endpoint puts its own BOS first
      if (!over->endpoint.served_model.empty()) o.endpoint.served_model = over->endpoint.served_model;
      o.endpoint.api_key = over->endpoint.api_key;
      o.quiet = true;
      const EvalRun run = run_evaluation(o, parts);
      const json now = eval_json(run.report, run.model);
      const auto checks = compare_golden(doc["results_json"], now, gates);
      bool pass = true;
      for (const auto& x : checks) pass = pass && x.pass;
      if (!*quiet && paths->first != "-") std::fputs(golden_table(checks).c_str(), stdout);
      const std::string target = run.report.endpoint.empty() ? o.model : run.report.endpoint;
      if (!paths->first.empty()) {
        json gj = json::array();
        for (const auto& x : checks)
          gj.push_back({{"gate", x.kind}, {"method", x.method}, {"length", x.length}, {"golden", x.before},
                        {"now", std::isfinite(x.after) ? json(x.after) : json(nullptr)}, {"change", x.change},
                        {"unit", x.unit}, {"allowed", x.limit}, {"pass", x.pass}, {"why", x.why}});
        write_output(paths->first,
                     safe_dump({{"pass", pass}, {"golden", *file}, {"target", target}, {"gates", gates_json(gates)},
                                {"checks", gj}, {"now", now}}, 2) + "\n",
                     "JSON comparison");
      }
      if (!paths->second.empty())
        write_output(paths->second,
                     compare_html(*file, checks, doc, {{"target", target}, {"results_json", now}}), "HTML comparison");
      std::fprintf(stderr, "ropescale: golden compare %s: %s\n", file->c_str(), pass ? "pass" : "FAIL");
      exit_code = pass ? 0 : 1;
    });
  }
}

}  // namespace ropescale::cli
