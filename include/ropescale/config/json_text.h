// JSON text helpers for untrusted input.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ropescale {

// JSON dump that never throws on bytes that are not UTF-8 (GGUF strings and
// user files are untrusted): invalid sequences are replaced by U+FFFD.
std::string safe_dump(const nlohmann::json& j, int indent = -1);

// Non-throwing field access for untrusted objects (nlohmann's value() throws
// when the stored type differs): the fallback when absent, null, or of
// another type.
std::string string_or(const nlohmann::json& obj, const char* key, const std::string& fallback);
double number_or(const nlohmann::json& obj, const char* key, double fallback);
bool bool_or(const nlohmann::json& obj, const char* key, bool fallback);

}  // namespace ropescale
