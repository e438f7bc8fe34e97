// The llama2.c BPE encoder against the real SentencePiece library on the same
// Llama-2 vocabulary (../shared/models/llama2c-tokenizer: tokenizer.model and
// its llama2.c export tokenizer.bin).
#include "ropescale/model/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <unordered_map>

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
  // A long text in one piece (the heap encoder is O(n log n)): 200 KB.
  const std::string long_text = text.substr(0, 200000);
  EXPECT_EQ(l2.encode(long_text, true, false), sp->encode(long_text, true, false));
  for (const char* s : {"Once upon a time", "Hello, world! 1234", "naïve café — “quotes”", "tabs\tand\nnewlines",
                        "a\u2581b \u2581\u2581x\u2581"})  // SentencePiece reads U+2581 as a space
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

// The textbook llama2.c merge loop: rescan every adjacent pair after each merge
// and take the highest score, leftmost on ties. O(n²); the reference for the
// heap-based encoder on texts short enough for it.
std::vector<int> naive_llama2c_encode(const Llama2cTokenizer& t, const std::string& text) {
  std::unordered_map<std::string, int> index;
  for (int i = t.vocab_size() - 1; i >= 0; --i) index[t.piece(i)] = i;  // first occurrence wins
  std::vector<int> toks{index.at(" ")};
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    n = std::min(n, text.size() - i);
    const std::string ch = text.substr(i, n);
    if (auto it = index.find(ch); it != index.end()) toks.push_back(it->second);
    else for (unsigned char b : ch) toks.push_back(b + 3);
    i += n;
  }
  for (;;) {
    float best = -1e30f;
    int best_id = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < toks.size(); ++i)
      if (auto it = index.find(t.piece(toks[i]) + t.piece(toks[i + 1])); it != index.end() && t.score(it->second) > best)
        best = t.score(it->second), best_id = it->second, at = i;
    if (best_id < 0) return toks;
    toks[at] = best_id;
    toks.erase(toks.begin() + static_cast<long>(at) + 1);
  }
}

TEST(Tokenizer, HeapEncoderEqualsTheNaiveMergeLoop) {
  const auto path = test::shared_dir() / "models/stories260K/tok512.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "SKIPPED LOUDLY: " << path << " is absent";
  const auto tok = Llama2cTokenizer::load(path.string(), 512);
  std::ifstream in(test::shared_dir() / "data/tinystories_valid_head.txt");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(text.size(), 100000u);
  int compared = 0;
  for (size_t start = 0; start + 1500 < text.size() && compared < 30; start += 26111, ++compared)
    EXPECT_EQ(tok.encode(text.substr(start, 1500), false, false), naive_llama2c_encode(tok, text.substr(start, 1500)));
  // Ties everywhere: long runs of one letter, digits, spaces and bytes without pieces.
  for (std::string s : {std::string(301, 'a'), std::string("aaaa bbbb aaaa bbbb"), std::string("1111122222 33"),
                        std::string("   x   "), std::string("\x01\x02 é 😀 ok")})
    EXPECT_EQ(tok.encode(s, false, false), naive_llama2c_encode(tok, s)) << s;
  EXPECT_EQ(tok.encode("", true, true), (std::vector<int>{1, 2}));
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
