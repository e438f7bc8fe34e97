// Read-only view of a whole file (mmap), so multi-GB GGUF files cost nothing
// to open and readers can bounds-check against the true size.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ropescale {

class MappedFile {
 public:
  // Throws ConfigError(Unreadable) naming the path if it cannot be opened.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A whole file as a string. Throws ConfigError(Unreadable) naming the path.
std::string read_file_text(const std::string& path);

// Writes `bytes` to `path` (replacing it). Throws ConfigError(Unreadable)
// naming the path when it cannot be opened or written; `what` ("the HTML
// report") makes the message say which output failed.
void write_file(const std::string& path, std::string_view bytes, const std::string& what = "");
inline void write_file(const std::string& path, std::span<const uint8_t> bytes, const std::string& what = "") {
  write_file(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), what);
}

}  // namespace ropescale
