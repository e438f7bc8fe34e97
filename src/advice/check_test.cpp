#include "ropescale/advice/check.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "ropescale/config/hf_config.h"
#include "test_support.h"

namespace ropescale {
namespace {

std::vector<Finding> check_text(const std::string& text, CheckOptions o = {}) {
  return check_config(parse_hf_config(text, "config.json"), o);
}

const Finding* find(const std::vector<Finding>& fs, const std::string& rule) {
  for (const auto& f : fs)
    if (f.rule == rule) return &f;
  return nullptr;
}

std::string base(const std::string& rope, const std::string& extra = "") {
  return R"({"hidden_size":4096,"num_attention_heads":32,"max_position_embeddings":8192,"rope_theta":10000)" + extra +
         R"(,"rope_scaling":)" + rope + "}";
}

TEST(Check, RealConfigsHaveNoErrors) {
  for (const char* m : {"llama-3.1-8b", "llama-3.2-1b", "phi-3-mini-128k-instruct", "qwen2.5-7b-instruct-yarn",
                        "qwen3-8b-yarn", "deepseek-v3", "gpt-oss-20b", "mistral-7b-v0.1", "codellama-7b", "bloom-560m",
                        "mpt-7b"}) {
    auto fs = check_config(load_model_config(test::model_config(m).string()));
    EXPECT_FALSE(has_errors(fs)) << m;
  }
}

TEST(Check, KnownPitfallsOfRealConfigs) {
  auto qwen3 = check_config(load_model_config(test::model_config("qwen3-8b-yarn").string()));
  const Finding* f = find(qwen3, "factor-length-mismatch");  // 40960/32768 = 1.25 ≠ 4 (§4.5)
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->key, "rope_scaling.factor");
  EXPECT_EQ(f->severity, Severity::Warning);
  EXPECT_NE(find(qwen3, "static-scaling-short-prompts"), nullptr);
  auto phi3 = check_config(load_model_config(test::model_config("phi-3-mini-128k-instruct").string()));
  EXPECT_NE(find(phi3, "legacy-su-alias"), nullptr);
  EXPECT_NE(find(phi3, "longrope-missing-factor"), nullptr);
  auto mistral = check_config(load_model_config(test::model_config("mistral-7b-v0.1").string()));
  EXPECT_NE(find(mistral, "sliding-window"), nullptr);
  auto llama = check_config(load_model_config(test::model_config("llama-3.1-8b").string()));
  EXPECT_TRUE(llama.empty());
  auto gptoss = check_config(load_model_config(test::model_config("gpt-oss-20b").string()));
  EXPECT_NE(find(gptoss, "yarn-truncate-false"), nullptr);
  EXPECT_EQ(find(gptoss, "sliding-window"), nullptr);  // hybrid layers
}

TEST(Check, FuzzRegressionsEndInFindings) {
  // Inputs the fuzzer once crashed on (tests/fuzz/regressions/hf_config): each
  // must now give findings, with an error, and no undefined behaviour.
  const auto dir = test::source_dir() / "tests/fuzz/regressions/hf_config";
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++files;
    const auto c = load_model_config(e.path().string());
    EXPECT_TRUE(has_errors(check_config(c))) << e.path();
  }
  EXPECT_GE(files, 1);
}

TEST(Check, AlibiWithRopeScalingIsAnError) {
  auto c = load_model_config(test::model_config("bloom-560m").string());
  apply_rope_override(c, R"({"rope_type":"linear","factor":2})");
  auto fs = check_config(c);
  ASSERT_NE(find(fs, "alibi-with-rope-scaling"), nullptr);
  EXPECT_TRUE(has_errors(fs));
}

TEST(Check, MaxPositionRaisedWithoutScaling) {
  auto fs = check_text(R"({"hidden_size":4096,"num_attention_heads":32,"max_position_embeddings":131072,
      "original_max_position_embeddings":4096})");
  const Finding* f = find(fs, "max-position-raised-without-scaling");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->severity, Severity::Error);
  EXPECT_EQ(f->key, "max_position_embeddings");
  EXPECT_EQ(f->value, "131072");
  // And a target beyond the trained length with no scaling.
  CheckOptions o;
  o.target_context = 32768;
  auto fs2 = check_text(R"({"hidden_size":4096,"num_attention_heads":32,"max_position_embeddings":8192})", o);
  EXPECT_NE(find(fs2, "target-beyond-trained-without-scaling"), nullptr);
}

TEST(Check, HfValidatorRules) {
  // Missing required key (HF KeyError).
  auto miss = check_text(base(R"({"rope_type":"linear"})"));
  ASSERT_NE(find(miss, "missing-required-key"), nullptr);
  EXPECT_EQ(find(miss, "missing-required-key")->key, "rope_scaling.factor");
  EXPECT_TRUE(has_errors(miss));
  // Unknown key (HF warning) with a naming hint.
  auto unk = check_text(base(R"({"rope_type":"yarn","factor":4,"original_max_position_embeddings":2048,"attn_factor":1.2})"));
  ASSERT_NE(find(unk, "unknown-key"), nullptr);
  EXPECT_NE(find(unk, "unknown-key")->fix.find("attention_factor"), std::string::npos);
  EXPECT_FALSE(has_errors(unk));
  // Unknown type.
  EXPECT_NE(find(check_text(base(R"({"rope_type":"ntk-by-parts","factor":2})")), "unknown-rope-type"), nullptr);
  // Wrong types, bad values.
  EXPECT_NE(find(check_text(base(R"({"rope_type":"linear","factor":"4"})")), "wrong-type"), nullptr);
  EXPECT_NE(find(check_text(base(R"({"rope_type":"linear","factor":0})")), "bad-factor"), nullptr);
  EXPECT_NE(find(check_text(base(R"({"rope_type":"linear","factor":-2})")), "bad-factor"), nullptr);
  EXPECT_NE(find(check_text(base(R"({"rope_type":"linear","factor":0.5})")), "factor-below-one"), nullptr);
  EXPECT_NE(find(check_text(base(R"({"rope_type":"yarn","factor":4,"original_max_position_embeddings":2048,"beta_fast":1,"beta_slow":32})")),
                 "beta-order"),
            nullptr);
  auto llama3 = check_text(base(R"({"rope_type":"llama3","factor":8,"low_freq_factor":4,"high_freq_factor":1,"original_max_position_embeddings":8192})"));
  EXPECT_NE(find(llama3, "llama3-band-order"), nullptr);
  EXPECT_NE(find(llama3, "llama3-original-not-below-max"), nullptr);
}

TEST(Check, TypeAndRopeTypeDisagree) {
  auto fs = check_text(base(R"({"type":"linear","rope_type":"dynamic","factor":2})"));
  ASSERT_NE(find(fs, "type-and-rope-type-disagree"), nullptr);
  EXPECT_TRUE(has_errors(fs));
}

TEST(Check, LongRopeListLength) {
  auto fs = check_text(base(R"({"rope_type":"longrope","short_factor":[1,1,1],"long_factor":[1,1,1],"factor":4,"original_max_position_embeddings":2048})"));
  const Finding* f = find(fs, "longrope-factor-length");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->key, "rope_scaling.short_factor");
  EXPECT_NE(f->why.find("64"), std::string::npos);  // head_dim 128 → 64 pairs
  EXPECT_TRUE(has_errors(fs));
}

TEST(Check, YarnMagnitudeTwiceAndLoneMscale) {
  auto twice = check_text(base(R"({"rope_type":"yarn","factor":4,"original_max_position_embeddings":2048,"attention_factor":1.2,"mscale":1,"mscale_all_dim":1})"));
  EXPECT_NE(find(twice, "yarn-magnitude-twice"), nullptr);
  auto lone = check_text(base(R"({"rope_type":"yarn","factor":4,"original_max_position_embeddings":2048,"mscale":0.707})"));
  EXPECT_NE(find(lone, "yarn-lone-mscale"), nullptr);
}

TEST(Check, DynamicAndStaticAdvice) {
  auto dyn = check_text(base(R"({"rope_type":"dynamic","factor":2})", R"(,"original_max_position_embeddings":4096)"));
  EXPECT_NE(find(dyn, "dynamic-not-portable"), nullptr);
  EXPECT_NE(find(dyn, "dynamic-uses-max-position"), nullptr);
  auto stat = check_text(base(R"({"rope_type":"linear","factor":4})"));
  EXPECT_NE(find(stat, "static-scaling-short-prompts")->fix.find("dynamic"), std::string::npos);
  auto tuned = check_text(base(R"({"rope_type":"yarn","factor":4,"original_max_position_embeddings":2048,"finetuned":true})"));
  EXPECT_EQ(find(tuned, "static-scaling-short-prompts"), nullptr);
  CheckOptions o;
  o.target_context = 100000;
  auto reach = check_text(base(R"({"rope_type":"yarn","factor":4,"original_max_position_embeddings":8192})"), o);
  EXPECT_NE(find(reach, "target-beyond-scaled-reach"), nullptr);
}

}  // namespace
}  // namespace ropescale
