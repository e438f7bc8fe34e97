#include "ropescale/config/gguf.h"

#include <cstring>

#include <gtest/gtest.h>

#include "ropescale/config/error.h"
#include "ropescale/rope/frequencies.h"
#include "test_support.h"

namespace ropescale {
namespace {

using nlohmann::json;

GgufKeyValue kv(const std::string& k, GgufValueType t, json v, GgufValueType at = GgufValueType::Uint8) {
  return {k, t, at, std::move(v)};
}

GgufTensorData f32_tensor(const std::string& name, const std::vector<float>& v) {
  GgufTensorData t;
  t.name = name;
  t.dims = {v.size()};
  t.data.resize(v.size() * 4);
  std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

// A small llama GGUF with YaRN metadata and one weight tensor.
std::vector<uint8_t> yarn_gguf() {
  std::vector<GgufKeyValue> md = {
      kv("general.architecture", GgufValueType::String, "llama"),
      kv("general.name", GgufValueType::String, "tiny"),
      kv("llama.context_length", GgufValueType::Uint32, 4096),
      kv("llama.embedding_length", GgufValueType::Uint32, 64),
      kv("llama.block_count", GgufValueType::Uint32, 2),
      kv("llama.attention.head_count", GgufValueType::Uint32, 8),
      kv("llama.attention.head_count_kv", GgufValueType::Uint32, 4),
      kv("llama.rope.freq_base", GgufValueType::Float32, 10000.0),
      kv("llama.rope.scaling.type", GgufValueType::String, "yarn"),
      kv("llama.rope.scaling.factor", GgufValueType::Float32, 8.0),
      kv("llama.rope.scaling.original_context_length", GgufValueType::Uint32, 512),
      kv("tokenizer.ggml.tokens", GgufValueType::Array, json::array({"a", "b", "c"}), GgufValueType::String),
  };
  return serialize_gguf(md, {f32_tensor("token_embd.weight", std::vector<float>(3 * 64, 0.5f))});
}

TEST(Gguf, RoundTripAndModelConfig) {
  const auto bytes = yarn_gguf();
  const auto f = parse_gguf(bytes, "t.gguf");
  EXPECT_EQ(f.version, 3u);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].elements(), 192u);
  EXPECT_EQ(f.data_offset % 32, 0u);
  EXPECT_EQ(read_f32_tensor(bytes, f, f.tensors[0], "t.gguf")[5], 0.5f);
  const auto c = model_config_from_gguf(bytes, "t.gguf");
  EXPECT_EQ(c.format, SourceFormat::Gguf);
  EXPECT_EQ(c.convention, Convention::GGML);
  EXPECT_EQ(c.layout, PairLayout::Interleaved);  // llama arch = ggml NORMAL
  EXPECT_EQ(c.vocab_size, 3);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.trained_context(), 512);
  const auto s = rope_spec_for(c);
  EXPECT_EQ(s.type, RopeType::Yarn);
  EXPECT_EQ(s.factor, 8.0);
  EXPECT_EQ(s.original_max_position, 512);
  // ggml magnitude: 1 + 0.1·ln 8 with the default attn factor 1.
  EXPECT_NEAR(compute_frequencies(s).attention_factor, 1.207944154, 1e-9);
}

TEST(Gguf, LongRopeAndRopeFreqsTensors) {
  std::vector<GgufKeyValue> md = {
      kv("general.architecture", GgufValueType::String, "phi3"),
      kv("phi3.context_length", GgufValueType::Uint32, 131072),
      kv("phi3.embedding_length", GgufValueType::Uint32, 64),
      kv("phi3.attention.head_count", GgufValueType::Uint32, 8),
      kv("phi3.rope.scaling.original_context_length", GgufValueType::Uint32, 4096),
      kv("phi3.rope.scaling.attn_factor", GgufValueType::Float32, 1.190238071),
  };
  auto bytes = serialize_gguf(md, {f32_tensor("rope_factors_long.weight", {10, 20, 30, 40}),
                                   f32_tensor("rope_factors_short.weight", {1, 2, 3, 4})});
  auto c = model_config_from_gguf(bytes, "phi.gguf");
  EXPECT_EQ(c.layout, PairLayout::HalfSplit);
  auto s = rope_spec_for(c);
  EXPECT_EQ(s.type, RopeType::LongRope);
  EXPECT_EQ(s.long_factor[3], 40.0);
  auto f = compute_frequencies(s, 8192);
  EXPECT_TRUE(f.uses_long_factors);
  EXPECT_NEAR(f.attention_factor, 1.190238071, 1e-6);

  // llama3 in ggml: per-pair divisors in rope_freqs.weight.
  std::vector<GgufKeyValue> md2 = {kv("general.architecture", GgufValueType::String, "llama"),
                                   kv("llama.context_length", GgufValueType::Uint32, 131072),
                                   kv("llama.embedding_length", GgufValueType::Uint32, 64),
                                   kv("llama.attention.head_count", GgufValueType::Uint32, 8)};
  auto b2 = serialize_gguf(md2, {f32_tensor("rope_freqs.weight", {1, 1, 2, 8})});
  auto c2 = model_config_from_gguf(b2, "l3.gguf");
  ASSERT_EQ(c2.freq_divisors.size(), 4u);
  auto f2 = compute_frequencies(rope_spec_for(c2));
  EXPECT_NEAR(f2.inv_freq[3], std::pow(10000.0, -6.0 / 8) / 8, 1e-12);
}

TEST(Gguf, EveryTruncationIsAnErrorNotACrash) {
  const auto bytes = yarn_gguf();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::span<const uint8_t> cut(bytes.data(), n);
    EXPECT_THROW(model_config_from_gguf(cut, "cut.gguf"), ConfigError) << "length " << n;
  }
}

TEST(Gguf, LyingHeadersAreRejected) {
  auto bytes = yarn_gguf();
  auto patch_u64 = [&](size_t off, uint64_t v) {
    auto b = bytes;
    std::memcpy(b.data() + off, &v, 8);
    return b;
  };
  auto expect_error = [](const std::vector<uint8_t>& b, const std::string& fragment) {
    try {
      parse_gguf(b, "lie.gguf");
      ADD_FAILURE() << "no error for: " << fragment;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("lie.gguf"), std::string::npos);
    }
  };
  expect_error(patch_u64(8, uint64_t(1) << 60), "tensor count");    // absurd tensor count
  expect_error(patch_u64(16, uint64_t(1) << 60), "metadata count");  // absurd kv count
  expect_error(patch_u64(24, uint64_t(1) << 50), "length");          // first key length
  auto bad_magic = bytes;
  bad_magic[0] = 'X';
  expect_error(bad_magic, "bad magic");
  auto bad_version = bytes;
  bad_version[4] = 9;
  expect_error(bad_version, "version");
  // Tensor data cut off: drop the last 16 bytes of the data section.
  std::vector<uint8_t> short_data(bytes.begin(), bytes.end() - 16);
  expect_error(short_data, "extends past the end");
}

TEST(Gguf, ModelLevelErrorsNameTheKey) {
  auto b = serialize_gguf({kv("llama.context_length", GgufValueType::Uint32, 4096)}, {});
  try {
    model_config_from_gguf(b, "noarch.gguf");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "general.architecture");
  }
  auto b2 = serialize_gguf({kv("general.architecture", GgufValueType::String, "llama"),
                            kv("llama.rope.scaling.type", GgufValueType::String, "ntk-by-magic")},
                           {});
  try {
    model_config_from_gguf(b2, "type.gguf");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "llama.rope.scaling.type");
  }
}

TEST(Gguf, TypeSizes) {
  EXPECT_EQ(ggml_type_bytes(0, 10), 40u);
  EXPECT_EQ(ggml_type_bytes(30, 10), 20u);  // BF16
  EXPECT_EQ(ggml_type_bytes(8, 64), 68u);   // Q8_0: 2 blocks × 34
  EXPECT_FALSE(ggml_type_bytes(8, 33).has_value());  // not a whole block
  EXPECT_FALSE(ggml_type_bytes(999, 10).has_value());
}

}  // namespace
}  // namespace ropescale
