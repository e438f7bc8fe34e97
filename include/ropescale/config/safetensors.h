// safetensors: u64 little-endian header length, a JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, …,
//  "__metadata__": {"k": "v"}}, then the data. The reader checks every offset,
// size and dtype against the bytes present before trusting them.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace ropescale {

struct SafetensorsTensor {
  std::string dtype;             // "F32", "F16", "BF16", …
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;   // relative to the data section
};

struct SafetensorsFile {
  std::map<std::string, SafetensorsTensor> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;      // absolute offset of the data section
};

// Throws ConfigError (Unreadable) naming the file and what is wrong.
SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, const std::string& path);

// The bytes of tensor `name` (range validated by parse_safetensors); decoding
// them is the caller's (the model layer's). Throws ConfigError if it is absent.
std::span<const uint8_t> safetensors_data(std::span<const uint8_t> bytes, const SafetensorsFile& f, const std::string& name,
                                          const std::string& path);

struct SafetensorsTensorData {
  std::string name;
  std::string dtype;  // F32, F16, BF16
  std::vector<uint64_t> shape;
  std::vector<uint8_t> data;
};
std::vector<uint8_t> serialize_safetensors(const std::vector<SafetensorsTensorData>& tensors,
                                           const std::map<std::string, std::string>& metadata = {});

}  // namespace ropescale
