// llama2.c checkpoint headers: the legacy v0 header (7 int32) and the
// versioned header (uint32 magic "ak42", int32 version, 7 int32, then
// shared-classifier flag and, for version 2, the int8 group size; padded to 256).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "ropescale/config/model_config.h"

namespace ropescale {

struct Llama2cHeader {
  int version = 0;  // 0 = legacy, 1 = fp32 "ak42", 2 = int8 "ak42"
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;
  int32_t group_size = 0;   // version 2
  uint64_t header_bytes = 0;
  uint64_t expected_bytes = 0;  // whole-file size the header implies (0 if not derivable)
  int head_dim() const { return n_heads > 0 ? dim / n_heads : 0; }
};

constexpr uint32_t kLlama2cMagic = 0x616b3432;  // "ak42" as a little-endian uint32

// Validates the header and the file size it implies. Throws ConfigError.
Llama2cHeader parse_llama2c_header(std::span<const uint8_t> bytes, const std::string& path);

ModelConfig model_config_from_llama2c(const Llama2cHeader& h, const std::string& path);

}  // namespace ropescale
