// JSON text helpers for untrusted input.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ropescale {

// JSON dump that never throws on bytes that are not UTF-8 (GGUF strings and
// user files are untrusted): invalid sequences are replaced by U+FFFD.
std::string safe_dump(const nlohmann::json& j, int indent = -1);

}  // namespace ropescale
