#include "ropescale/advice/export.h"

#include <gtest/gtest.h>

#include "ropescale/config/hf_config.h"
#include "ropescale/rope/frequencies.h"
#include "test_support.h"

namespace ropescale {
namespace {

using nlohmann::json;

ModelConfig model(const std::string& name) { return load_model_config(test::model_config(name).string()); }

bool has_note(const ExportResult& r, const std::string& fragment) {
  for (const auto& n : r.notes)
    if (n.find(fragment) != std::string::npos) return true;
  return false;
}

TEST(Export, HfRoundTripReproducesFrequencies) {
  // Export each real RoPE config to HF JSON (legacy and v5), read it back, and
  // require the same frequencies and attention factor.
  for (const char* m : {"llama-3.1-8b", "phi-3-mini-128k-instruct", "qwen3-8b-yarn", "deepseek-v3", "gpt-oss-20b", "codellama-7b"}) {
    auto c = model(m);
    const auto want = compute_frequencies(rope_spec_for(c), 1 << 20);
    for (auto t : {ExportTarget::HF, ExportTarget::HFv5}) {
      auto r = export_setting(c, t);
      json doc = r.data;
      doc["hidden_size"] = c.hidden_size;
      doc["num_attention_heads"] = c.num_attention_heads;
      if (c.rotary_head_dim != c.head_dim) doc["qk_rope_head_dim"] = c.rotary_head_dim;
      doc["head_dim"] = c.head_dim;
      auto back = parse_hf_config(doc.dump(), "exported.json");
      const auto got = compute_frequencies(rope_spec_for(back), 1 << 20);
      ASSERT_EQ(got.inv_freq.size(), want.inv_freq.size()) << m;
      for (size_t j = 0; j < got.inv_freq.size(); ++j) EXPECT_DOUBLE_EQ(got.inv_freq[j], want.inv_freq[j]) << m << " pair " << j;
      EXPECT_DOUBLE_EQ(got.attention_factor, want.attention_factor) << m;
      EXPECT_TRUE(r.exact) << m;
    }
  }
}

TEST(Export, LlamaCppYarnFlags) {
  auto c = model("qwen2.5-7b-instruct-yarn");
  auto r = export_setting(c, ExportTarget::LlamaCpp, 131072);
  EXPECT_EQ(r.text, "--rope-scaling yarn --rope-scale 4.0 --yarn-orig-ctx 32768 -c 131072");
  EXPECT_TRUE(r.exact);
  // gpt-oss truncate=false: not expressible in ggml.
  auto g = export_setting(model("gpt-oss-20b"), ExportTarget::LlamaCpp);
  EXPECT_FALSE(g.exact);
  EXPECT_TRUE(has_note(g, "truncate=false"));
  // DeepSeek: HF magnitude 1.0 vs ggml's built-in 1.3689 → explicit attn factor 1/1.3689.
  auto d = export_setting(model("deepseek-v3"), ExportTarget::LlamaCpp);
  ASSERT_NE(d.text.find("--yarn-attn-factor"), std::string::npos);
  const auto& argv = d.data;
  for (size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == "--yarn-attn-factor") {
      EXPECT_NEAR(std::stod(argv[i + 1].get<std::string>()), 1.0 / 1.368887945, 1e-9);
    }
}

TEST(Export, SaysPlainlyWhatATargetCannotExpress) {
  auto c = model("codellama-7b");
  apply_rope_override(c, R"({"rope_type":"dynamic","factor":2})");
  auto l = export_setting(c, ExportTarget::LlamaCpp, 32768);
  EXPECT_FALSE(l.exact);
  EXPECT_TRUE(has_note(l, "no dynamic NTK"));
  auto v = export_setting(c, ExportTarget::VLLM, 32768);
  EXPECT_FALSE(v.exact);
  EXPECT_TRUE(has_note(v, "static"));
  EXPECT_TRUE(export_setting(c, ExportTarget::HF, 32768).exact);
  // Fixed NTK: exact everywhere, as a base change.
  apply_rope_override(c, R"({"rope_type":"ntk","factor":4})");
  auto h = export_setting(c, ExportTarget::HF);
  EXPECT_TRUE(h.exact);
  EXPECT_TRUE(h.data["rope_scaling"].is_null());
  EXPECT_NEAR(h.data["rope_theta"].get<double>(), ntk_theta(1e6, 4, 128), 1e-6);
  EXPECT_NE(export_setting(c, ExportTarget::LlamaCpp).text.find("--rope-freq-base"), std::string::npos);
  // llama3 needs the rope_freqs tensor in llama.cpp.
  EXPECT_TRUE(has_note(export_setting(model("llama-3.1-8b"), ExportTarget::LlamaCpp), "rope_freqs"));
}

TEST(Export, VllmArguments) {
  auto r = export_setting(model("qwen3-8b-yarn"), ExportTarget::VLLM, 131072);
  ASSERT_EQ(r.data.size(), 4u);
  EXPECT_EQ(r.data[0], "--hf-overrides");
  auto overrides = json::parse(r.data[1].get<std::string>());
  EXPECT_EQ(overrides["rope_scaling"]["rope_type"], "yarn");
  EXPECT_EQ(overrides["rope_scaling"]["factor"], 4.0);
  EXPECT_EQ(r.data[2], "--max-model-len");
  EXPECT_EQ(r.data[3], "131072");
  EXPECT_TRUE(has_note(r, "--rope-scaling"));
}

TEST(Export, LongRopeAttentionFactorsForVllmAndHf) {
  // vLLM's Phi3LongRoPE reads short_mscale/long_mscale and ignores attention_factor: the export writes
  // each regime's factor. HF's longrope applies attention_factor at every length: not exact once they differ.
  auto c = model("phi-3-mini-128k-instruct");
  const RopeSpec phi = rope_spec_for(c);
  const double rule = compute_frequencies(phi, phi.original_max_position + 1).attention_factor;
  auto v = json::parse(export_setting(c, ExportTarget::VLLM).data[1].get<std::string>());
  EXPECT_DOUBLE_EQ(v["rope_scaling"]["short_mscale"].get<double>(), rule);
  EXPECT_DOUBLE_EQ(v["rope_scaling"]["long_mscale"].get<double>(), rule);
  EXPECT_TRUE(export_setting(c, ExportTarget::HF).exact);
  json p = c.rope_parameters;
  p["attention_factor"] = 1.15;
  p["short_mscale"] = 1.0;
  apply_rope_override(c, p.dump());
  v = json::parse(export_setting(c, ExportTarget::VLLM).data[1].get<std::string>());
  EXPECT_EQ(v["rope_scaling"]["short_mscale"].get<double>(), 1.0);
  EXPECT_EQ(v["rope_scaling"]["long_mscale"].get<double>(), 1.15);
  auto h = export_setting(c, ExportTarget::HF);
  EXPECT_FALSE(h.exact);
  EXPECT_TRUE(has_note(h, "ignores short_mscale"));
}

}  // namespace
}  // namespace ropescale
