// load_model: any supported model file, chosen by what it is.
#include <cstring>
#include <filesystem>

#include "ropescale/config/mapped_file.h"
#include "ropescale/model/hf_model.h"
#include "ropescale/model/llama_model.h"

namespace ropescale {

LlamaModel load_model(const std::string& path, GgufRopeSource gguf_rope) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec) || fs::path(path).extension() == ".json") return load_hf_model(path);
  MappedFile file(path);
  const auto b = file.bytes();
  if (b.size() >= 4 && std::memcmp(b.data(), "GGUF", 4) == 0) return load_gguf_model(path, gguf_rope);
  return load_llama2c_model(path);
}

}  // namespace ropescale
