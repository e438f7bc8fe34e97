// The llama2.c BPE encoder against the real SentencePiece library on the same
// Llama-2 vocabulary (../shared/models/llama2c-tokenizer: tokenizer.model and
// its llama2.c export tokenizer.bin).
#include "ropescale/model/tokenizer.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "ropescale/config/error.h"
#include "test_support.h"

namespace ropescale {
namespace {

TEST(Tokenizer, Llama2cEncoderMatchesSentencePiece) {
  const auto dir = test::shared_dir() / "models/llama2c-tokenizer";
  if (!std::filesystem::exists(dir / "tokenizer.model")) GTEST_SKIP() << "SKIPPED LOUDLY: " << dir << " is absent";
  const auto sp = SentencePieceTokenizer::load((dir / "tokenizer.model").string());
  const auto l2 = Llama2cTokenizer::load((dir / "tokenizer.bin").string(), 32000);
  ASSERT_EQ(sp->vocab_size(), 32000);
  std::ifstream in(test::shared_dir() / "data/tinystories_valid_head.txt");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  int compared = 0;
  for (size_t start = 0; start + 400 < text.size() && compared < 40; start += 9973, ++compared) {
    const std::string piece = text.substr(start, 400);
    EXPECT_EQ(l2.encode(piece, true, false), sp->encode(piece, true, false)) << piece;
  }
  for (const char* s : {"Once upon a time", "Hello, world! 1234", "naïve café — “quotes”", "tabs\tand\nnewlines"})
    EXPECT_EQ(l2.encode(s, true, false), sp->encode(s, true, false)) << s;
  // Decoding token by token gives the text back.
  const auto ids = sp->encode("Once upon a time, Lily smiled.", true, false);
  std::string back;
  for (size_t i = 1; i < ids.size(); ++i) back += sp->decode(ids[i - 1], ids[i]);
  EXPECT_EQ(back, "Once upon a time, Lily smiled.");
  // to_llama2c keeps ids and scores.
  const auto conv = sp->to_llama2c();
  EXPECT_EQ(conv.encode("Once upon a time", true, false), sp->encode("Once upon a time", true, false));
}

TEST(Tokenizer, BadFilesAreErrors) {
  EXPECT_THROW(SentencePieceTokenizer::load(test::write_temp("bad.model", "not a model")), ConfigError);
  EXPECT_THROW(SentencePieceTokenizer::load("/nonexistent/tokenizer.model"), ConfigError);
  // max_token_length 7, then one token whose length (5) runs past the file's 2 bytes.
  std::vector<uint8_t> truncated;
  auto put = [&](const void* p, size_t n) { truncated.insert(truncated.end(), (const uint8_t*)p, (const uint8_t*)p + n); };
  const int32_t max_len = 7, len = 5;
  const float score = 1.0f;
  put(&max_len, 4);
  put(&score, 4);
  put(&len, 4);
  put("ab", 2);
  EXPECT_THROW(Llama2cTokenizer::load(test::write_temp("bad.bin", truncated)), ConfigError);
}

}  // namespace
}  // namespace ropescale
