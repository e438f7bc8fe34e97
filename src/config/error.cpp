#include "ropescale/config/error.h"

namespace ropescale {

namespace {
std::string compose(const std::string& file, const std::string& key, const std::string& value,
                    const std::string& reason) {
  std::string m = file.empty() ? std::string("<input>") : file;
  if (!key.empty()) {
    m += ": key '" + key + "'";
    if (!value.empty()) m += " = " + value;
  }
  m += ": " + reason;
  return m;
}
}  // namespace

ConfigError::ConfigError(Kind kind, std::string file, std::string key, std::string value, std::string reason)
    : std::runtime_error(compose(file, key, value, reason)),
      kind_(kind),
      file_(std::move(file)),
      key_(std::move(key)),
      value_(std::move(value)),
      reason_(std::move(reason)) {}

void throw_unreadable(const std::string& file, const std::string& reason) {
  throw ConfigError(ConfigError::Kind::Unreadable, file, "", "", reason);
}

void throw_invalid(const std::string& file, const std::string& key, const std::string& value,
                   const std::string& reason) {
  throw ConfigError(ConfigError::Kind::Invalid, file, key, value, reason);
}

}  // namespace ropescale
