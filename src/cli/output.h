// Small helpers shared by the CLI commands: findings, byte sizes, JSON.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropescale/advice/check.h"
#include "ropescale/advice/export.h"

namespace ropescale::cli {

std::string human_bytes(double bytes);
nlohmann::json findings_json(const std::vector<Finding>& findings);
void print_findings(const std::vector<Finding>& findings);
nlohmann::json export_json(const ExportResult& r);
void print_export(const ExportResult& r);
// Print JSON to stdout (pretty) never throwing on odd bytes.
void print_json(const nlohmann::json& j);

}  // namespace ropescale::cli
