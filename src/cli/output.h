// Small helpers shared by the CLI commands: findings, byte sizes, JSON.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropescale/advice/check.h"
#include "ropescale/advice/export.h"
#include "ropescale/config/error.h"

namespace ropescale::cli {

std::string human_bytes(double bytes);
nlohmann::json findings_json(const std::vector<Finding>& findings);
void print_findings(const std::vector<Finding>& findings);
nlohmann::json export_json(const ExportResult& r);
void print_export(const ExportResult& r);
// Print JSON to stdout (pretty) never throwing on odd bytes.
void print_json(const nlohmann::json& j);

// A comma-separated option value, each item through `parse` (which throws on a
// bad item). Errors name the flag and the item: "'x' is not <expected>", or
// "'x' is not valid in '<text>'" when `expected` is empty.
template <class T, class Parse>
std::vector<T> parse_list(const std::string& text, const char* flag, Parse parse, const std::string& expected = "") {
  std::vector<T> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      out.push_back(parse(item));
    } catch (const std::exception&) {
      throw_unreadable(flag, "'" + item + "' is not " + (expected.empty() ? "valid in '" + text + "'" : expected));
    }
  }
  if (out.empty()) throw_unreadable(flag, "is empty");
  return out;
}

// A comma-separated list of integers >= 1 ("512,1024").
std::vector<int64_t> parse_positive_ints(const std::string& text, const char* flag);

}  // namespace ropescale::cli
