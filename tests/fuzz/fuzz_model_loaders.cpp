// libFuzzer target: whole model files through the runtime's loaders (GGUF and
// llama2.c, chosen by content as `ropescale generate --model F` does), the
// GGUF vocabulary, and one forward step of any model that loads. Every input
// must end in a model or a ConfigError: no crash, hang or huge allocation.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "ropescale/config/error.h"
#include "ropescale/model/gguf_model.h"
#include "ropescale/model/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ropescale;
  struct ScratchFile {  // one per process, removed when libFuzzer exits
    std::string path =
        (std::filesystem::temp_directory_path() / ("ropescale-fuzz-model-" + std::to_string(::getpid()))).string();
    ~ScratchFile() { std::remove(path.c_str()); }
  };
  static const ScratchFile scratch;
  const std::string& path = scratch.path;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  try {
    const LlamaModel m = load_model(path);
    SessionOptions o;
    o.max_context = 4;
    o.rope = rope_spec_for_model(m);
    InferenceSession s(m, o);
    (void)s.forward(std::vector<int>{m.hp.vocab_size > 1 ? 1 : 0});
  } catch (const ConfigError&) {
  } catch (const std::invalid_argument&) {  // a session refusing its options, named
  }
  try {
    (void)load_gguf_tokenizer(path);
  } catch (const ConfigError&) {
  }
  return 0;
}
