// libFuzzer target: GGUF bytes → parsed file → ModelConfig → check → spec.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ropescale/advice/check.h"
#include "ropescale/config/error.h"
#include "ropescale/config/gguf.h"
#include "ropescale/rope/frequencies.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ropescale;
  const std::span<const uint8_t> bytes(data, size);
  try {
    const GgufFile f = parse_gguf(bytes, "fuzz.gguf");
    for (const auto& t : f.tensors)
      if (t.type == 0 && t.elements() < (1u << 16)) (void)read_f32_tensor(bytes, f, t, "fuzz.gguf");
  } catch (const ConfigError&) {
  }
  try {
    const ModelConfig c = model_config_from_gguf(bytes, "fuzz.gguf");
    (void)check_config(c);
    (void)compute_frequencies(rope_spec_for(c), 100000);
  } catch (const ConfigError&) {
  }
  return 0;
}
