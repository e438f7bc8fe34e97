// Read-only view of a whole file (mmap), so multi-GB GGUF files cost nothing
// to open and readers can bounds-check against the true size.
#pragma once

#include <cstdint>
#include <span>
#include <string>

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

}  // namespace ropescale
