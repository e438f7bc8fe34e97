// libFuzzer target: config.json text → ModelConfig → check → spec → frequencies
// → exports. Any input must end in a value or a ConfigError, never a crash,
// a sanitizer report or an uncaught exception.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ropescale/advice/check.h"
#include "ropescale/advice/export.h"
#include "ropescale/config/error.h"
#include "ropescale/config/hf_config.h"
#include "ropescale/rope/frequencies.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ropescale;
  try {
    const ModelConfig c = parse_hf_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
    (void)check_config(c);
    const RopeSpec s = rope_spec_for(c);
    (void)compute_frequencies(s, int64_t{1} << 20);
    for (auto t : {ExportTarget::HF, ExportTarget::VLLM, ExportTarget::LlamaCpp}) (void)export_setting(c, t, 65536);
  } catch (const ConfigError&) {
  }
  return 0;
}
