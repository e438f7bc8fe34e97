#include "ropescale/config/json_text.h"

namespace ropescale {

std::string safe_dump(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string string_or(const nlohmann::json& o, const char* key, const std::string& fallback) {
  if (!o.is_object()) return fallback;
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : fallback;
}

double number_or(const nlohmann::json& o, const char* key, double fallback) {
  if (!o.is_object()) return fallback;
  auto it = o.find(key);
  return it != o.end() && it->is_number() && !it->is_boolean() ? it->get<double>() : fallback;
}

bool bool_or(const nlohmann::json& o, const char* key, bool fallback) {
  if (!o.is_object()) return fallback;
  auto it = o.find(key);
  return it != o.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace ropescale
