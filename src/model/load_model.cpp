// load_model: any supported model file, chosen by what it is.
#include <cstring>
#include <filesystem>

#include "ropescale/config/mapped_file.h"
#include "ropescale/config/model_shape.h"
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

LlamaModel describe_model(const std::string& path, GgufRopeSource gguf_rope) {
  namespace fs = std::filesystem;
  std::error_code ec;
  LlamaModel m;
  m.path = path;
  const bool hf = fs::is_directory(path, ec);
  m.position = load_model_config(hf ? (fs::path(path) / "config.json").string() : path, gguf_rope);
  require_valid_model_shape(m.position);
  m.hp = hparams_from_config(m.position);
  if (m.position.format == SourceFormat::HfConfig) m.hp.layout = PairLayout::HalfSplit;
  return m;
}

}  // namespace ropescale
