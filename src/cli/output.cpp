#include "output.h"

#include <cstdio>

#include <fmt/core.h>

#include "ropescale/config/json_text.h"

namespace ropescale::cli {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) b /= 1024.0, ++u;
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.2f} {}", b, units[u]);
}

nlohmann::json findings_json(const std::vector<Finding>& findings) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& f : findings)
    a.push_back({{"severity", to_string(f.severity)}, {"rule", f.rule}, {"key", f.key}, {"value", f.value},
                 {"why", f.why}, {"fix", f.fix}});
  return a;
}

void print_findings(const std::vector<Finding>& findings) {
  if (findings.empty()) {
    fmt::print("  no findings\n");
    return;
  }
  for (const auto& f : findings) {
    fmt::print("  {:<7} [{}] {} = {}\n", to_string(f.severity), f.rule, f.key, f.value);
    fmt::print("          why: {}\n", f.why);
    fmt::print("          fix: {}\n", f.fix);
  }
}

nlohmann::json export_json(const ExportResult& r) {
  return {{"target", to_string(r.target)}, {"exact", r.exact}, {"text", r.text}, {"data", r.data}, {"notes", r.notes}};
}

void print_export(const ExportResult& r) {
  fmt::print("[{}]{}\n{}\n", to_string(r.target), r.exact ? "" : "  (approximate: see notes)", r.text);
  for (const auto& n : r.notes) fmt::print("  note: {}\n", n);
}

void print_json(const nlohmann::json& j) {
  const std::string s = safe_dump(j, 2);
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}

std::vector<int64_t> parse_positive_ints(const std::string& text, const char* flag) {
  return parse_list<int64_t>(
      text, flag,
      [](const std::string& item) {
        size_t used = 0;
        const long long v = std::stoll(item, &used);
        if (v < 1 || used != item.size()) throw std::out_of_range(item);
        return static_cast<int64_t>(v);
      },
      "a positive integer");
}

}  // namespace ropescale::cli
