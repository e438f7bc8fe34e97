// What inspect/convert say about how llama.cpp and transformers tokenize a
// vocabulary: exact for what ropescale writes, and the pitfalls named.
#include "ropescale/model/tokenizer_report.h"

#include <filesystem>
#include <functional>

#include <gtest/gtest.h>

#include "ropescale/config/gguf.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/config/model_config.h"
#include "ropescale/model/gguf_model.h"
#include "ropescale/model/hf_model.h"
#include "test_support.h"
#include "tiny_model.h"

namespace ropescale {
namespace {

std::string fmt_byte_token(int b) { return Llama2cTokenizer::byte_level().piece(3 + b); }

bool mentions(const std::vector<std::string>& lines, const std::string& what) {
  for (const auto& l : lines)
    if (l.find(what) != std::string::npos) return true;
  return false;
}

ModelConfig gguf_config(int vocab) {
  ModelConfig c;
  c.format = SourceFormat::Gguf;
  c.vocab_size = vocab;
  return c;
}

// A GGUF holding only the tokenizer metadata of `bytes` after `edit`.
std::string edited_gguf(const std::vector<uint8_t>& bytes, const std::function<void(std::vector<GgufKeyValue>&)>& edit) {
  GgufFile f = parse_gguf(bytes, "in-memory");
  edit(f.metadata);
  return test::write_temp("edited.gguf", serialize_gguf(f.metadata, {}));
}

TEST(TokenizerReport, WhatRopescaleWritesIsExactInBothEngines) {
  const auto bytes = Llama2cTokenizer::byte_level();
  const auto r = report_written_vocabulary(bytes);
  EXPECT_EQ(r.kind, "byte-level");
  ASSERT_EQ(r.engines.size(), 2u);
  for (const auto& e : r.engines) EXPECT_TRUE(e.exact) << e.engine;
  EXPECT_TRUE(r.warnings().empty());

  const LlamaModel m = test::tiny_llama(16, 32, 1, 2, 1, 259, 64, 3);
  const auto path = test::write_temp("bytes.gguf", serialize_gguf_model(m, bytes, WeightType::F32));
  const auto file = report_model_tokenizer(gguf_config(259), path);
  EXPECT_EQ(file.source, path);
  EXPECT_NE(file.engines[0].how.find("gpt2"), std::string::npos) << file.engines[0].how;
  EXPECT_TRUE(file.warnings().empty());
}

TEST(TokenizerReport, ForeignGgufMetadataIsNamed) {
  const LlamaModel m = test::tiny_llama(16, 32, 1, 2, 1, 259, 64, 3);
  const auto bytes = serialize_gguf_model(m, Llama2cTokenizer::byte_level(), WeightType::F32);
  // What ropescale wrote before the fix: a byte-level vocabulary declared as SentencePiece.
  const auto old = edited_gguf(bytes, [](std::vector<GgufKeyValue>& md) {
    for (auto& kv : md) {
      if (kv.key == "tokenizer.ggml.model") kv.value = "llama";
      if (kv.key == "tokenizer.ggml.tokens")
        for (int b = 0; b < 256; ++b) kv.value[3 + b] = fmt_byte_token(b);
    }
  });
  const auto r = report_model_tokenizer(gguf_config(259), old);
  EXPECT_FALSE(r.engines[0].exact);
  EXPECT_TRUE(mentions(r.warnings("llama.cpp"), "declared as SentencePiece")) << r.warnings().size();
  // llama.cpp adds no space prefix / no BOS when the file says so; ropescale does.
  const auto no_prefix = edited_gguf(bytes, [](std::vector<GgufKeyValue>& md) {
    for (auto& kv : md) {
      if (kv.key == "tokenizer.ggml.model") kv.value = "llama";
      if (kv.key == "tokenizer.ggml.add_bos_token") kv.value = false;
    }
    md.push_back({"tokenizer.ggml.add_space_prefix", GgufValueType::Bool, GgufValueType::Uint8, false});
  });
  const auto w = report_model_tokenizer(gguf_config(259), no_prefix).warnings("llama.cpp");
  EXPECT_TRUE(mentions(w, "tokenizer.ggml.add_space_prefix is false"));
  EXPECT_TRUE(mentions(w, "tokenizer.ggml.add_bos_token is false"));
  const auto bert = edited_gguf(bytes, [](std::vector<GgufKeyValue>& md) {
    for (auto& kv : md)
      if (kv.key == "tokenizer.ggml.model") kv.value = "bert";
  });
  EXPECT_TRUE(mentions(report_model_tokenizer(gguf_config(259), bert).warnings("llama.cpp"), "\"bert\""));
}

TEST(TokenizerReport, SentencePieceVocabularyPitfallsAreCaveats) {
  auto pieces = [] {
    std::vector<std::string> p{"<unk>", "\n<s>\n", "\n</s>\n"};
    for (int b = 0; b < 256; ++b) p.push_back(fmt_byte_token(b));
    return p;
  };
  // A clean one: exact in both.
  auto clean = pieces();
  clean.insert(clean.end(), {" t", "he", " the"});
  std::vector<float> distinct(262, 0.0f);
  distinct[260] = -1, distinct[261] = -2;
  const auto ok = report_written_vocabulary(Llama2cTokenizer::from_pieces(clean, distinct));
  EXPECT_EQ(ok.kind, "sentencepiece");
  EXPECT_TRUE(ok.warnings().empty());
  // Duplicates, a literal U+2581, a missing byte token and tied scores.
  auto bad = pieces();
  bad[3 + 'A'] = "A";
  bad.insert(bad.end(), {" t", "he", " t", "x\xe2\x96\x81"});
  std::vector<float> scores(bad.size(), 0.0f);
  const auto r = report_written_vocabulary(Llama2cTokenizer::from_pieces(bad, scores));
  const auto w = r.warnings();
  EXPECT_TRUE(mentions(w, "not the byte token <0x41>"));
  EXPECT_TRUE(mentions(w, "are both \" t\""));
  EXPECT_TRUE(mentions(w, "contains U+2581"));
  EXPECT_TRUE(mentions(r.warnings("transformers"), "share a score"));
  EXPECT_FALSE(mentions(r.warnings("llama.cpp"), "share a score"));  // llama.cpp also takes the leftmost
}

TEST(TokenizerReport, Stories260KExportsAScoreOrderedBpeTokenizerJson) {
  const auto dir = test::shared_dir() / "models/stories260K";
  if (!std::filesystem::exists(dir / "stories260K.bin")) GTEST_SKIP() << "SKIPPED LOUDLY: " << dir << " is absent";
  const LlamaModel m = load_model((dir / "stories260K.bin").string());
  const auto tok = Llama2cTokenizer::load((dir / "tok512.bin").string(), 512);
  EXPECT_TRUE(report_written_vocabulary(tok).warnings().empty());
  const auto hf_dir = test::temp_dir() / "stories-hf";
  write_hf_model(m, tok, WeightType::F32, hf_dir.string());
  const auto tj = nlohmann::json::parse(read_file_text((hf_dir / "tokenizer.json").string()));
  EXPECT_EQ(tj["model"]["byte_fallback"], true);
  EXPECT_EQ(tj["model"]["vocab"]["\xe2\x96\x81t"], 259);                      // " t", spelled ▁t
  EXPECT_EQ(tj["model"]["merges"][0], nlohmann::json::array({"\xe2\x96\x81", "t"}));  // the best-scoring piece first
  EXPECT_EQ(tj["normalizer"]["normalizers"][0]["prepend"], "\xe2\x96\x81");
  const auto r = report_model_tokenizer(load_model_config(hf_dir.string()), hf_dir.string());
  EXPECT_TRUE(r.engines[1].exact) << r.engines[1].how;
  EXPECT_NE(r.engines[1].how.find("its tokenizer.json"), std::string::npos);
  std::filesystem::remove(hf_dir / "tokenizer.json");
  EXPECT_FALSE(report_model_tokenizer(load_model_config(hf_dir.string()), hf_dir.string()).engines[1].exact);
}

}  // namespace
}  // namespace ropescale
