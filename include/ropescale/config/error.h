// The one error type of the config layer: it names the file, the key and the
// value at fault, and whether the input could not be read at all (CLI exit 2)
// or was read but holds an invalid setting (CLI exit 1).
#pragma once

#include <stdexcept>
#include <string>

namespace ropescale {

class ConfigError : public std::runtime_error {
 public:
  enum class Kind {
    Unreadable,  // missing file, not JSON, truncated/lying binary header
    Invalid,     // parsed, but a key has a wrong type or an impossible value
  };
  ConfigError(Kind kind, std::string file, std::string key, std::string value, std::string reason);

  Kind kind() const { return kind_; }
  const std::string& file() const { return file_; }
  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  const std::string& reason() const { return reason_; }

 private:
  Kind kind_;
  std::string file_, key_, value_, reason_;
};

// Shorthands.
[[noreturn]] void throw_unreadable(const std::string& file, const std::string& reason);
[[noreturn]] void throw_invalid(const std::string& file, const std::string& key, const std::string& value,
                                const std::string& reason);

}  // namespace ropescale
