// stories260K converted to GGUF must give the logits of the original.
#include "ropescale/model/gguf_model.h"

#include <cmath>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "ropescale/advice/check.h"
#include "ropescale/config/error.h"
#include "ropescale/model/hf_model.h"
#include "ropescale/model/session.h"
#include "test_support.h"

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
    const auto hf_dir = (std::filesystem::temp_directory_path() / ("ropescale-hf-" + std::to_string(::getpid()))).string();
    write_hf_model(orig, tok, WeightType::F32, hf_dir);
    const auto hf = load_model(hf_dir);
    EXPECT_EQ(hf.hp.layout, PairLayout::HalfSplit);
    EXPECT_EQ(gguf.hp.layout, PairLayout::Interleaved);
    EXPECT_LE(max_abs_diff(logits_of(gguf, ids, rope), want), 0.0);
    EXPECT_LE(max_abs_diff(logits_of(hf, ids, rope), want), 1e-4);
    std::filesystem::remove_all(hf_dir);
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
