#include "ropescale/eval/golden.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <tuple>

#include <fmt/core.h>

namespace ropescale {

using nlohmann::json;

namespace {

double number(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::nan("");
}

// Per (method, length): exact trials, trials, and the trial-weighted needle NLL of a passkey
// or task cell list (per-depth cells summed over depths).
struct Total {
  double exact = 0, trials = 0, nll = 0, score = 0;
};
using Key = std::tuple<std::string, std::string, int64_t>;  // method, task, length

std::map<Key, Total> retrieval_totals(const json& report) {
  std::map<Key, Total> out;
  auto add = [&](const json& cells, const std::string& fixed_task) {
    if (!cells.is_array()) return;
    for (const json& c : cells) {
      const std::string task = fixed_task.empty() ? c.value("task", "") : fixed_task;
      Total& t = out[{c.value("method", ""), task, c.value("length", int64_t(0))}];
      const double n = number(c, "trials");
      t.trials += n;
      t.exact += number(c, "exact");
      t.nll += number(c, "needle_nll") * n;
      t.score += (fixed_task.empty() ? number(c, "score") : number(c, "exact") / n) * n;
    }
  };
  if (report.contains("passkey")) add(report["passkey"].value("cells", json::array()), "passkey");
  if (report.contains("tasks")) add(report["tasks"].value("cells", json::array()), "");
  for (auto& [k, t] : out)
    if (t.trials > 0) t.nll /= t.trials, t.score /= t.trials;
  return out;
}

}  // namespace

std::vector<GateCheck> compare_golden(const json& golden, const json& current, const GoldenGates& g) {
  std::vector<GateCheck> checks;
  const int64_t trained = golden.value("trained_context", int64_t(0));
  // Perplexity by (method, ctx).
  std::map<std::pair<std::string, int64_t>, double> now;
  for (const json& x : current.value("results", json::array())) now[{x.value("method", ""), x.value("ctx", int64_t(0))}] = number(x, "ppl");
  for (const json& x : golden.value("results", json::array())) {
    GateCheck c;
    c.method = x.value("method", "");
    c.length = x.value("ctx", int64_t(0));
    const bool is_short = c.length <= trained;
    c.kind = is_short ? "short ppl" : "long ppl";
    c.unit = "%";
    c.limit = is_short ? g.short_ppl_percent : g.long_ppl_percent;
    c.before = number(x, "ppl");
    const auto it = now.find({c.method, c.length});
    if (it == now.end() || !std::isfinite(it->second)) {
      c.pass = false, c.after = std::nan(""), c.why = "missing from the new run";
    } else {
      c.after = it->second;
      c.change = (c.after / c.before - 1.0) * 100.0;
      c.pass = c.change <= c.limit;
      if (!c.pass) c.why = fmt::format("perplexity {:.4f} → {:.4f} (+{:.2f} %, allowed +{:.2f} %)", c.before, c.after, c.change, c.limit);
    }
    checks.push_back(c);
  }
  // Retrieval: accuracy and needle NLL by (method, task, length).
  const auto before = retrieval_totals(golden), after = retrieval_totals(current);
  for (const auto& [key, b] : before) {
    const auto& [method, task, length] = key;
    const auto it = after.find(key);
    for (int metric = 0; metric < 2; ++metric) {
      GateCheck c;
      c.method = method;
      c.length = length;
      c.kind = task + (metric == 0 ? (task == "passkey" ? " exact" : " score") : " needle NLL");
      c.unit = metric == 0 ? "points" : "nats";
      c.limit = metric == 0 ? g.accuracy_points : g.needle_nll;
      c.before = metric == 0 ? b.score * 100 : b.nll;
      if (it == after.end() || it->second.trials != b.trials) {
        c.pass = false, c.after = std::nan("");
        c.why = it == after.end() ? "missing from the new run" : "the new run has other trials";
      } else {
        c.after = metric == 0 ? it->second.score * 100 : it->second.nll;
        c.change = c.after - c.before;
        c.pass = metric == 0 ? -c.change <= c.limit : c.change <= c.limit;
        if (!c.pass)
          c.why = metric == 0 ? fmt::format("{:.1f} → {:.1f} (−{:.1f} points, allowed −{:.1f})", c.before, c.after, -c.change, c.limit)
                              : fmt::format("{:.3f} → {:.3f} nats (+{:.3f}, allowed +{:.3f})", c.before, c.after, c.change, c.limit);
      }
      checks.push_back(c);
    }
  }
  return checks;
}

json gates_json(const GoldenGates& g) {
  return {{"short_ppl_percent", g.short_ppl_percent}, {"long_ppl_percent", g.long_ppl_percent},
          {"needle_nll", g.needle_nll}, {"accuracy_points", g.accuracy_points}};
}

GoldenGates gates_from_json(const json& j) {
  GoldenGates g;
  if (!j.is_object()) throw std::invalid_argument("gates must be a JSON object");
  auto read = [&](const char* key, double& v) {
    if (!j.contains(key)) return;
    if (!j[key].is_number() || !(j[key].get<double>() >= 0))
      throw std::invalid_argument(std::string("gates.") + key + " must be a number ≥ 0, got " + j[key].dump());
    v = j[key].get<double>();
  };
  read("short_ppl_percent", g.short_ppl_percent);
  read("long_ppl_percent", g.long_ppl_percent);
  read("needle_nll", g.needle_nll);
  read("accuracy_points", g.accuracy_points);
  return g;
}

std::string golden_table(const std::vector<GateCheck>& checks) {
  size_t kw = 6, mw = 8;
  for (const auto& c : checks) kw = std::max(kw, c.kind.size() + 2), mw = std::max(mw, c.method.size() + 2);
  std::string s = fmt::format("{:<{}}{:<{}}{:>8}{:>12}{:>12}{:>12}{:>12}  {}\n", "gate", kw, "method", mw, "length",
                              "before", "after", "change", "allowed", "verdict");
  int failed = 0;
  for (const auto& c : checks) {
    const std::string unit = c.unit == "%" ? " %" : c.unit == "points" ? " pt" : "";
    const std::string allowed = (c.unit == "points" ? "−" : "+") + fmt::format("{:.2f}", c.limit) + unit;
    s += fmt::format("{:<{}}{:<{}}{:>8}{:>12}{:>12}{:>12}{:>12}  {}\n", c.kind, kw, c.method, mw, c.length,
                     fmt::format("{:.4f}", c.before), std::isfinite(c.after) ? fmt::format("{:.4f}", c.after) : "—",
                     std::isfinite(c.after) ? fmt::format("{:+.2f}{}", c.change, unit) : "—", allowed,
                     c.pass ? "pass" : "FAIL: " + c.why);
    failed += !c.pass;
  }
  s += fmt::format("{} gates, {} failed\n", checks.size(), failed);
  return s;
}

}  // namespace ropescale
