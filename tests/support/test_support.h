// Paths and temp files for tests. ROPESCALE_SOURCE_DIR is set by CMake;
// ../shared sits beside the checkout (CI has it). Tests that need shared data
// and find it absent skip loudly with GTEST_SKIP.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <string>
#include <vector>

namespace ropescale::test {

inline std::filesystem::path source_dir() { return ROPESCALE_SOURCE_DIR; }
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("ROPESCALE_SHARED")) return env;
  return source_dir().parent_path() / "shared";
}
inline std::filesystem::path model_config(const std::string& name) {
  return source_dir() / "configs" / "models" / name / "config.json";
}

// A directory of this process's own (ctest runs test processes in parallel, so
// names must not collide across processes), removed when the process exits.
inline const std::filesystem::path& temp_dir() {
  struct Owned {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("ropescale-tests-" + std::to_string(::getpid()));
    Owned() { std::filesystem::create_directories(path); }
    ~Owned() {
      std::error_code ignored;  // a destructor at exit: nothing to report to
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Owned owned;
  return owned.path;
}

// A temp file with `bytes` in temp_dir().
inline std::string write_temp(const std::string& name, const std::string& bytes) {
  auto p = temp_dir() / name;
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}
inline std::string write_temp(const std::string& name, const std::vector<uint8_t>& bytes) {
  return write_temp(name, std::string(bytes.begin(), bytes.end()));
}

// How many times `what` occurs in `text` (overlaps counted).
inline int count_occurrences(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

}  // namespace ropescale::test
