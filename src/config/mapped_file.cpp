#include "ropescale/config/mapped_file.h"

#include <fstream>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ropescale/config/error.h"

namespace ropescale {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_unreadable(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw_unreadable(path, "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw_unreadable(path, std::string("cannot map: ") + std::strerror(errno));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::string read_file_text(const std::string& path) {
  MappedFile f(path);
  const auto b = f.bytes();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

void write_file(const std::string& path, std::string_view bytes, const std::string& what) {
  const std::string of = what.empty() ? "" : " (" + what + ")";
  std::ofstream out(path, std::ios::binary);
  if (!out) throw_unreadable(path, "cannot open for writing" + of);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw_unreadable(path, "write failed" + of);
}

}  // namespace ropescale
