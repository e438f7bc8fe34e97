// stories260K converted to GGUF must give the logits of the original.
#include "ropescale/model/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <filesystem>

#include <gtest/gtest.h>

#include "ropescale/advice/check.h"
#include "ropescale/config/llama2c_header.h"
#include "ropescale/config/error.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/model/hf_model.h"
#include "ropescale/model/session.h"
#include "test_support.h"
#include "tiny_model.h"

namespace ropescale {
namespace {

std::vector<float> logits_of(const LlamaModel& m, const std::vector<int>& ids, const std::string& rope = "") {
  SessionOptions o;
  o.max_context = 2048;
  o.rope = rope_spec_for_model(m, rope);
  InferenceSession s(m, o);
  return s.forward(ids, true);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i) w = std::max(w, double(std::abs(a[i] - b[i])));
  return w;
}

TEST(GgufModel, Stories260KRoundTripsThroughEveryWeightType) {
  const auto dir = test::shared_dir() / "models/stories260K";
  if (!std::filesystem::exists(dir / "stories260K.bin")) GTEST_SKIP() << "SKIPPED LOUDLY: " << dir << " is absent";
  const LlamaModel orig = load_model((dir / "stories260K.bin").string());
  const auto tok = Llama2cTokenizer::load((dir / "tok512.bin").string(), 512);
  const auto ids = tok.encode("Once upon a time, there was a little girl named Lily. She loved to play outside.", true, false);
  const auto want = logits_of(orig, ids);
  // Tolerances: f32 is bit-for-bit the same arithmetic; the others are bounded
  // by their rounding of the weights (logits are O(10)).
  const std::pair<WeightType, double> cases[] = {
      {WeightType::F32, 0.0}, {WeightType::F16, 0.05}, {WeightType::BF16, 0.5}, {WeightType::Q8_0, 0.5}};
  for (auto [wt, tol] : cases) {
    const auto path = test::write_temp("stories.gguf", serialize_gguf_model(orig, tok, wt));
    const LlamaModel g = load_model(path);
    EXPECT_EQ(g.hp.dim, 64);
    EXPECT_EQ(g.hp.trained_context, 512);
    EXPECT_EQ(g.hp.layout, PairLayout::Interleaved);
    EXPECT_LE(max_abs_diff(logits_of(g, ids), want), tol) << "weight type " << int(wt);
    // The embedded vocabulary tokenizes like tok512.bin.
    const auto gt = load_gguf_tokenizer(path);
    EXPECT_EQ(gt.encode("Once upon a time", true, false), (std::vector<int>{1, 403, 407, 261, 378}));
  }
}

TEST(GgufModel, CarriesItsRopeSetting) {
  const auto dir = test::shared_dir() / "models/stories260K";
  if (!std::filesystem::exists(dir / "stories260K.bin")) GTEST_SKIP() << "SKIPPED LOUDLY: " << dir << " is absent";
  const LlamaModel orig = load_model((dir / "stories260K.bin").string());
  const auto tok = Llama2cTokenizer::load((dir / "tok512.bin").string(), 512);
  for (const char* rope : {R"({"rope_type":"yarn","factor":8})", R"({"rope_type":"linear","factor":4})",
                           R"({"rope_type":"dynamic","factor":4})", R"({"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4})"}) {
    SCOPED_TRACE(rope);
    const auto path = test::write_temp("scaled.gguf", serialize_gguf_model(orig, tok, WeightType::F32, nlohmann::json::parse(rope)));
    const LlamaModel g = load_model(path);
    EXPECT_EQ(g.hp.trained_context, 512);
    const auto spec = rope_spec_for_model(g);
    const auto want = rope_spec_for_model(orig, rope);
    EXPECT_EQ(spec.type, want.type);
    EXPECT_EQ(spec.factor, want.factor);
    const auto a = compute_frequencies(spec, 2048), b = compute_frequencies(want, 2048);
    for (size_t j = 0; j < a.inv_freq.size(); ++j) EXPECT_DOUBLE_EQ(a.inv_freq[j], b.inv_freq[j]);
    EXPECT_FALSE(has_errors(check_config(g.position)));
  }
  // llama.cpp's own keys are written too: a reader without ropescale's key sees yarn / 8 / 512.
  const auto bytes = serialize_gguf_model(orig, tok, WeightType::F32, nlohmann::json::parse(R"({"rope_type":"yarn","factor":8})"));
  const auto f = parse_gguf(bytes, "x.gguf");
  EXPECT_EQ(f.find("llama.rope.scaling.type")->value, "yarn");
  EXPECT_EQ(f.find("llama.rope.scaling.factor")->value, 8.0);
  EXPECT_EQ(f.find("llama.rope.scaling.original_context_length")->value, 512);
  EXPECT_EQ(f.find("llama.context_length")->value, 4096);
  EXPECT_NE(f.find_tensor("blk.4.ffn_down.weight"), nullptr);

  // An attention factor other than YaRN's own 0.1·ln(s) + 1 reaches llama.cpp as rope.scaling.attn_factor
  // (the ratio), and LongRoPE as rope_freqs.weight (long factors) + attn_factor — no
  // rope_factors_long/short tensors, which llama.cpp's llama architecture refuses to load.
  const std::pair<const char*, double> magnitudes[] = {
      {R"({"rope_type":"yarn","factor":8,"attention_factor":1.0})", 1.0 / (0.1 * std::log(8.0) + 1)},
      {R"({"rope_type":"yarn","factor":8,"mscale":1.0,"mscale_all_dim":0.5})", 1.0 / (0.05 * std::log(8.0) + 1)},
      {R"({"rope_type":"longrope","factor":8,"short_factor":[1,1.1,1.5,2],"long_factor":[1,2,4,8]})", std::sqrt(1 + std::log(8.0) / std::log(512.0))}};
  for (auto [rope, attn] : magnitudes) {
    SCOPED_TRACE(rope);
    const auto b = serialize_gguf_model(orig, tok, WeightType::F32, nlohmann::json::parse(rope));
    const auto g = parse_gguf(b, "x.gguf");
    ASSERT_NE(g.find("llama.rope.scaling.attn_factor"), nullptr);
    EXPECT_NEAR(g.find("llama.rope.scaling.attn_factor")->value.get<double>(), attn, 1e-6);
    EXPECT_EQ(g.find_tensor("rope_factors_long.weight"), nullptr);
    // Both rope records agree (the default --gguf-rope agree would refuse the file otherwise).
    EXPECT_NO_THROW(load_model(test::write_temp("magnitude.gguf", b)));
  }
}

TEST(ModelFormats, LogitsAgreeAcrossLlama2cGgufAndSafetensors) {
  // The same model in three files: llama2.c (Meta rows, interleaved pairs),
  // GGUF (Meta rows, ggml NORMAL) and HF safetensors (rows permuted for
  // rotate_half, half-split pairs). Only summation order differs.
  const auto dir = test::shared_dir() / "models/stories260K";
  if (!std::filesystem::exists(dir / "stories260K.bin")) GTEST_SKIP() << "SKIPPED LOUDLY: " << dir << " is absent";
  const LlamaModel orig = load_model((dir / "stories260K.bin").string());
  const auto tok = Llama2cTokenizer::load((dir / "tok512.bin").string(), 512);
  std::vector<int> ids = {1};
  for (int i = 0; i < 700; ++i) ids.push_back(3 + (i * 37) % 509);  // past the trained 512
  for (const char* rope : {"", R"({"rope_type":"yarn","factor":2})"}) {
    SCOPED_TRACE(rope);
    const auto want = logits_of(orig, ids, rope);
    const auto gguf = load_model(test::write_temp("three.gguf", serialize_gguf_model(orig, tok, WeightType::F32)));
    const auto hf_dir = (test::temp_dir() / "three-hf").string();
    write_hf_model(orig, tok, WeightType::F32, hf_dir);
    const auto hf = load_model(hf_dir);
    EXPECT_EQ(hf.hp.layout, PairLayout::HalfSplit);
    EXPECT_EQ(gguf.hp.layout, PairLayout::Interleaved);
    EXPECT_LE(max_abs_diff(logits_of(gguf, ids, rope), want), 0.0);
    EXPECT_LE(max_abs_diff(logits_of(hf, ids, rope), want), 1e-4);
    std::filesystem::remove_all(hf_dir);
  }
}

std::vector<int> greedy(const LlamaModel& m, int n) {
  SessionOptions o;
  o.max_context = 512;
  o.rope = rope_spec_for_model(m);
  InferenceSession s(m, o);
  std::vector<int> ids = {1};
  while (static_cast<int>(ids.size()) < n) {
    const auto logits = s.forward(std::span<const int>(&ids.back(), 1));
    ids.push_back(static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  }
  return ids;
}

TEST(ModelFormats, GoldenGreedySequenceFromEveryFormat) {
  // SOURCES.md: the 41-token greedy sequence from BOS, from the llama2.c file,
  // a llama2.c v1 ("ak42") re-export, and the GGUF and safetensors conversions.
  const auto dir = test::shared_dir() / "models/stories260K";
  if (!std::filesystem::exists(dir / "stories260K.bin")) GTEST_SKIP() << "SKIPPED LOUDLY: " << dir << " is absent";
  const std::vector<int> want = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395,
                                 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265,
                                 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352};
  const LlamaModel orig = load_model((dir / "stories260K.bin").string());
  const auto tok = Llama2cTokenizer::load((dir / "tok512.bin").string(), 512);
  EXPECT_EQ(greedy(orig, 41), want);
  EXPECT_EQ(greedy(load_model(test::write_temp("g.gguf", serialize_gguf_model(orig, tok, WeightType::F32))), 41), want);
  EXPECT_EQ(greedy(load_model(test::write_temp("g16.gguf", serialize_gguf_model(orig, tok, WeightType::F16))), 41), want);
  const auto hf_dir = (test::temp_dir() / "greedy-hf").string();
  write_hf_model(orig, tok, WeightType::F32, hf_dir);
  EXPECT_EQ(greedy(load_model(hf_dir), 41), want);
  std::filesystem::remove_all(hf_dir);

  // llama2.c version 1 layout (export.py version1_export): 256-byte header,
  // then norms, final norm, embedding, then wq…w3 per kind over layers.
  const auto& hp = orig.hp;
  std::vector<uint8_t> v1(256, 0);
  const uint32_t magic = kLlama2cMagic;
  const int32_t header[] = {1, hp.dim, hp.hidden_dim, hp.n_layers, hp.n_heads, hp.n_kv_heads, hp.vocab_size, hp.trained_context};
  std::memcpy(v1.data(), &magic, 4);
  std::memcpy(v1.data() + 4, header, sizeof(header));
  v1[36] = 1;  // shared classifier
  auto put = [&](const std::vector<float>& w) {
    const auto* p = reinterpret_cast<const uint8_t*>(w.data());
    v1.insert(v1.end(), p, p + w.size() * 4);
  };
  for (const auto& l : orig.layers) put(l.attn_norm);
  for (const auto& l : orig.layers) put(l.ffn_norm);
  put(orig.final_norm);
  put(orig.token_embedding);
  for (auto field : {&LlamaLayerWeights::wq, &LlamaLayerWeights::wk, &LlamaLayerWeights::wv, &LlamaLayerWeights::wo,
                     &LlamaLayerWeights::w1, &LlamaLayerWeights::w2, &LlamaLayerWeights::w3})
    for (const auto& l : orig.layers) put(l.*field);
  EXPECT_EQ(greedy(load_model(test::write_temp("v1.bin", v1)), 41), want);
}

// A byte-level vocabulary (ropescale's own models) is written as GPT-2 byte-level BPE without
// merges, which llama.cpp tokenizes byte for byte like ropescale (issue 20), and read back as
// the same byte-level tokenizer. Anything else claiming to be gpt2 is refused by name.
TEST(GgufModel, ByteLevelVocabularyIsWrittenAsByteLevelBpeAndReadBack) {
  const LlamaModel m = test::tiny_llama(16, 32, 1, 2, 1, 259, 64, 3);
  const auto tok = Llama2cTokenizer::byte_level();
  const auto bytes = serialize_gguf_model(m, tok, WeightType::F32);
  const auto path = test::write_temp("bytes.gguf", bytes);
  const GgufFile f = parse_gguf(bytes, path);
  EXPECT_EQ(f.find("tokenizer.ggml.model")->value, "gpt2");
  const auto& toks = f.find("tokenizer.ggml.tokens")->value;
  ASSERT_EQ(toks.size(), 259u);
  EXPECT_EQ(toks[3 + 'a'], "a");
  EXPECT_EQ(toks[3 + ' '], "\xc4\xa0");   // GPT-2's stand-in for the space byte, U+0120
  EXPECT_EQ(toks[3 + '\n'], "\xc4\x8a");  // newline, U+010A
  EXPECT_EQ(toks[3 + 0xFF], "\xc3\xbf");   // ÿ stands for itself
  EXPECT_EQ(toks[3 + 0xAD], "\xc5\x83");   // the soft hyphen is the last of the remapped bytes, U+0143
  EXPECT_TRUE(f.find("tokenizer.ggml.merges")->value.empty());
  const auto back = load_gguf_tokenizer(path);
  ASSERT_TRUE(back.is_byte_level());
  const std::string text = "In the beginning\n\tGod\xe2\x96\x81 caf\xc3\xa9 1234!";
  std::vector<int> want{Llama2cTokenizer::kBos};
  for (unsigned char c : text) want.push_back(3 + c);
  EXPECT_EQ(back.encode(text, true, false), want);

  // The HF export carries the same vocabulary as tokenizer.json (the HF oracle checks transformers' ids).
  const auto hf_dir = std::filesystem::path(path).parent_path() / "bytes-hf";
  write_hf_model(m, tok, WeightType::F32, hf_dir.string());
  const auto tj = nlohmann::json::parse(read_file_text((hf_dir / "tokenizer.json").string()));
  EXPECT_EQ(tj["model"]["type"], "BPE");
  EXPECT_EQ(tj["model"]["vocab"].size(), 259u);
  EXPECT_EQ(tj["model"]["vocab"]["\xc4\xa0"], 3 + ' ');
  EXPECT_TRUE(tj["model"]["merges"].empty());
  EXPECT_EQ(tj["pre_tokenizer"]["use_regex"], false);
  EXPECT_TRUE(std::filesystem::exists(hf_dir / "tokenizer_config.json"));

  // A gpt2 vocabulary with merges (a real BPE model) is refused, naming the key.
  GgufFile g = f;
  for (auto& kv : g.metadata)
    if (kv.key == "tokenizer.ggml.merges") kv.value = nlohmann::json::array({"a b"});
  try {
    gguf_tokenizer(g, path);
    FAIL() << "merges accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.merges"), std::string::npos) << e.what();
  }
}

TEST(GgufModel, RejectsBrokenModels) {
  const auto dir = test::shared_dir() / "models/stories260K";
  if (!std::filesystem::exists(dir / "stories260K.bin")) GTEST_SKIP() << "SKIPPED LOUDLY: " << dir << " is absent";
  const LlamaModel orig = load_model((dir / "stories260K.bin").string());
  const auto tok = Llama2cTokenizer::load((dir / "tok512.bin").string(), 512);
  auto bytes = serialize_gguf_model(orig, tok, WeightType::F16);
  bytes.resize(bytes.size() - 1000);  // truncated tensor data
  const auto cut = test::write_temp("cut-model.gguf", bytes);
  try {
    load_model(cut);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cut-model.gguf"), std::string::npos);
  }
}

}  // namespace
}  // namespace ropescale
