// GGUF (llama.cpp's model file): header, key/value metadata, tensor infos.
// Spec: github.com/ggml-org/ggml docs/gguf.md (version 2 and 3, little endian).
// The reader checks every count, length, type, offset and size against the
// bytes actually present before using it: a truncated or lying file gives a
// ConfigError, never an out-of-bounds read.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropescale/config/json_text.h"
#include "ropescale/config/model_config.h"

namespace ropescale {

enum class GgufValueType : uint32_t {
  Uint8 = 0, Int8 = 1, Uint16 = 2, Int16 = 3, Uint32 = 4, Int32 = 5, Float32 = 6,
  Bool = 7, String = 8, Array = 9, Uint64 = 10, Int64 = 11, Float64 = 12,
};

// ggml tensor types ropescale knows the size of.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};
// Bytes for `n_elements` of `type`, or nullopt for a type of unknown layout.
std::optional<uint64_t> ggml_type_bytes(uint32_t type, uint64_t n_elements);
std::string ggml_type_name(uint32_t type);

struct GgufKeyValue {
  std::string key;
  GgufValueType type = GgufValueType::Uint32;
  GgufValueType array_type = GgufValueType::Uint8;  // element type when type == Array
  nlohmann::json value;                              // numbers, bool, string, or array
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ne0 (fastest) first
  uint32_t type = 0;
  uint64_t offset = 0;                 // relative to the data section
  std::optional<uint64_t> n_bytes;     // nullopt for unknown types
  uint64_t elements() const;
};

struct GgufFile {
  uint32_t version = 3;
  std::vector<GgufKeyValue> metadata;
  std::vector<GgufTensorInfo> tensors;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // absolute file offset of the data section

  const GgufKeyValue* find(const std::string& key) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;
};

GgufFile parse_gguf(std::span<const uint8_t> bytes, const std::string& path);

// Data of an F32 tensor (validated to lie inside `bytes`).
std::vector<float> read_f32_tensor(std::span<const uint8_t> bytes, const GgufFile& file,
                                   const GgufTensorInfo& tensor, const std::string& path);

// Writer: metadata and tensors → GGUF v3 bytes. Tensor data must match
// ggml_type_bytes(type, elements).
struct GgufTensorData {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type = static_cast<uint32_t>(GgmlType::F32);
  std::vector<uint8_t> data;
};
std::vector<uint8_t> serialize_gguf(const std::vector<GgufKeyValue>& metadata,
                                    const std::vector<GgufTensorData>& tensors, uint64_t alignment = 32);

// GGUF metadata → ModelConfig (rope keys per rope-reference.md §2.4).
ModelConfig model_config_from_gguf(std::span<const uint8_t> bytes, const std::string& path,
                                   GgufRopeSource source = GgufRopeSource::Agree);
// The file as llama.cpp sees it: the llama.cpp keys and tensors only.
ModelConfig model_config_from_gguf_keys(std::span<const uint8_t> bytes, const GgufFile& file, const std::string& path);

}  // namespace ropescale
