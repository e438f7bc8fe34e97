// libFuzzer target: the binary model-file readers other than GGUF —
// safetensors headers and llama2.c checkpoint headers. Any input must end in a
// value or a ConfigError.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ropescale/config/error.h"
#include "ropescale/config/llama2c_header.h"
#include "ropescale/config/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ropescale;
  const std::span<const uint8_t> bytes(data, size);
  try {
    const auto f = parse_safetensors(bytes, "fuzz.safetensors");
    for (const auto& [name, t] : f.tensors)
      if (t.end - t.begin < (1u << 16)) {
        // Touch every byte of the validated range.
        unsigned sum = 0;
        for (uint8_t x : safetensors_data(bytes, f, name, "fuzz.safetensors")) sum += x;
        (void)sum;
      }
  } catch (const ConfigError&) {
  }
  try {
    (void)model_config_from_llama2c(parse_llama2c_header(bytes, "fuzz.bin"), "fuzz.bin");
  } catch (const ConfigError&) {
  }
  return 0;
}
