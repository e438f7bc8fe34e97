// SHA-256 (FIPS 180-4) of bytes or a file: what a golden set records of every
// input file, so a re-run can tell the text it reads is the text it was recorded on.
#pragma once

#include <string>
#include <string_view>

namespace ropescale {

// Lower-case hex digest.
std::string sha256_hex(std::string_view bytes);
// Of a file's contents; throws ConfigError (Unreadable) naming the file.
std::string file_sha256_hex(const std::string& path);

}  // namespace ropescale
