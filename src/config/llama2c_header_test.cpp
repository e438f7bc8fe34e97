#include "ropescale/config/llama2c_header.h"

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "ropescale/config/error.h"
#include "test_support.h"

namespace ropescale {
namespace {

std::vector<uint8_t> read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(Llama2c, RealStories260K) {
  const auto path = test::shared_dir() / "models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "SKIPPED LOUDLY: " << path << " is absent (../shared not beside the checkout)";
  const auto bytes = read_all(path);
  const auto h = parse_llama2c_header(bytes, path.string());
  // SOURCES.md: (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) = (64, 172, 5, 8, 4, 512, 512).
  EXPECT_EQ(h.version, 0);
  EXPECT_EQ(h.dim, 64);
  EXPECT_EQ(h.hidden_dim, 172);
  EXPECT_EQ(h.n_layers, 5);
  EXPECT_EQ(h.n_heads, 8);
  EXPECT_EQ(h.n_kv_heads, 4);
  EXPECT_EQ(h.vocab_size, 512);
  EXPECT_EQ(h.seq_len, 512);
  EXPECT_TRUE(h.shared_classifier);
  EXPECT_EQ(h.head_dim(), 8);
  EXPECT_EQ(h.expected_bytes, 1056540u);
  const auto c = load_model_config(path.string());
  EXPECT_EQ(c.format, SourceFormat::Llama2c);
  EXPECT_EQ(c.layout, PairLayout::Interleaved);
  EXPECT_EQ(c.trained_context(), 512);
  EXPECT_EQ(rope_spec_for(c).rotary_dim, 8);

  // Truncated copy: a clear error, naming the sizes.
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + 5000);
  try {
    parse_llama2c_header(cut, "cut.bin");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST(Llama2c, VersionedHeader) {
  // ak42 v1, dim 16, hidden 32, 1 layer, 2 heads, 1 kv head, vocab 8, seq 64, shared classifier.
  std::vector<uint8_t> b(256, 0);
  const uint32_t magic = kLlama2cMagic;
  const int32_t fields[] = {1, 16, 32, 1, 2, 1, 8, 64};
  std::memcpy(b.data(), &magic, 4);
  std::memcpy(b.data() + 4, fields, sizeof(fields));
  b[36] = 1;
  // weights: 8·16 + 2·16 + (16·16 + 2·16·8 + 16·16) + 3·16·32 + 16 floats
  const size_t floats = 8 * 16 + 2 * 16 + (256 + 256 + 256) + 3 * 16 * 32 + 16;
  b.resize(256 + floats * 4, 0);
  const auto h = parse_llama2c_header(b, "v1.bin");
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.seq_len, 64);
  EXPECT_TRUE(h.shared_classifier);
  b.pop_back();
  EXPECT_THROW(parse_llama2c_header(b, "v1.bin"), ConfigError);
}

TEST(Llama2c, GarbageIsRejected) {
  std::vector<uint8_t> tiny(10, 0);
  EXPECT_THROW(parse_llama2c_header(tiny, "tiny.bin"), ConfigError);
  std::vector<uint8_t> junk(28, 0xff);  // all fields −1
  EXPECT_THROW(parse_llama2c_header(junk, "junk.bin"), ConfigError);
  // vocab_size = INT32_MIN: negating it was undefined (found by fuzz_model_files).
  std::vector<uint8_t> min_vocab(28, 0);
  const int32_t fields[] = {8, 16, 1, 2, 1, INT32_MIN, 4};
  std::memcpy(min_vocab.data(), fields, sizeof(fields));
  EXPECT_THROW(parse_llama2c_header(min_vocab, "min.bin"), ConfigError);
  const auto p = test::write_temp("junk.dat", std::string(100, 'x'));
  try {
    load_model_config(p);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.kind(), ConfigError::Kind::Unreadable);
    EXPECT_NE(std::string(e.what()).find("not a config.json, a GGUF file or a llama2.c checkpoint"), std::string::npos);
  }
}

}  // namespace
}  // namespace ropescale
