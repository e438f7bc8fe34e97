#include "ropescale/config/hf_config.h"

#include <cmath>

#include <limits>

#include <gtest/gtest.h>

#include "ropescale/config/error.h"
#include "ropescale/rope/frequencies.h"
#include "test_support.h"

namespace ropescale {
namespace {

ModelConfig parse(const std::string& text) { return parse_hf_config(text, "config.json"); }

TEST(HfConfig, Llama31) {
  auto c = load_model_config(test::model_config("llama-3.1-8b").string());
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.trained_context(), 8192);
  EXPECT_EQ(c.rope_source, "rope_scaling");
  auto s = rope_spec_for(c);
  EXPECT_EQ(s.type, RopeType::Llama3);
  EXPECT_EQ(s.theta, 500000);
  EXPECT_EQ(s.rotary_dim, 128);
  EXPECT_EQ(s.layout, PairLayout::HalfSplit);
}

TEST(HfConfig, TypeKeyAndSuAliasAndTopLevelOriginal) {
  // Phi-3: "type": "su", top-level original_max_position_embeddings, no factor.
  auto c = load_model_config(test::model_config("phi-3-mini-128k-instruct").string());
  EXPECT_EQ(c.rope_parameters["rope_type"], "longrope");
  EXPECT_EQ(c.rope_parameters["original_max_position_embeddings"], 4096);
  auto s = rope_spec_for(c);
  EXPECT_EQ(s.type, RopeType::LongRope);
  EXPECT_EQ(s.rotary_dim, 96);
  EXPECT_EQ(s.factor, 32.0);  // max_position_embeddings / original (v5 rule)
  EXPECT_NEAR(compute_frequencies(s).attention_factor, 1.190238071, 1e-9);
  // By hand from the published lists (§6.4): inv'[j] = 1 / (ext[j] · 10000^(2j/96)).
  const auto short_f = compute_frequencies(s, 4096);   // at the original length: short factors
  const auto long_f = compute_frequencies(s, 4097);    // past it: long factors
  EXPECT_NEAR(short_f.inv_freq[0], 1.0 / 1.05, 1e-15);
  EXPECT_NEAR(short_f.inv_freq[47], 1.0 / (3.05 * std::pow(10000.0, 94.0 / 96)), 1e-18);
  EXPECT_NEAR(long_f.inv_freq[0], 1.0 / 1.03, 1e-15);
  EXPECT_NEAR(long_f.inv_freq[29], 1.0 / (53.84 * std::pow(10000.0, 58.0 / 96)), 1e-6 * long_f.inv_freq[29]);
  EXPECT_NEAR(long_f.inv_freq[47], 1.0 / (64.81 * std::pow(10000.0, 94.0 / 96)), 1e-6 * long_f.inv_freq[47]);
  EXPECT_NEAR(long_f.attention_factor, 1.190238071, 1e-9);
  // The top-level value overwrites the dict's for longrope/yarn/llama3.
  auto d = parse(R"({"hidden_size":64,"num_attention_heads":8,"max_position_embeddings":4096,
      "original_max_position_embeddings":1024,
      "rope_scaling":{"rope_type":"yarn","factor":4,"original_max_position_embeddings":2048}})");
  EXPECT_EQ(d.rope_parameters["original_max_position_embeddings"], 1024);
}

TEST(HfConfig, RopeParametersV5AndDefaults) {
  auto c = parse(R"({"hidden_size":256,"num_attention_heads":4,"max_position_embeddings":2048,
      "rope_parameters":{"rope_type":"yarn","factor":2.0,"rope_theta":50000}})");
  EXPECT_EQ(c.rope_source, "rope_parameters");
  auto s = rope_spec_for(c);
  EXPECT_EQ(s.theta, 50000);
  EXPECT_EQ(s.original_max_position, 2048);  // setdefault max_position_embeddings
  EXPECT_EQ(s.rotary_dim, 64);
  // rope_scaling wins over rope_parameters when both exist.
  auto both = parse(R"({"hidden_size":256,"num_attention_heads":4,"max_position_embeddings":2048,
      "rope_scaling":{"type":"linear","factor":3},"rope_parameters":{"rope_type":"default"}})");
  EXPECT_EQ(rope_spec_for(both).type, RopeType::Linear);
  // No rope keys at all: default RoPE with theta 10000.
  auto plain = parse(R"({"hidden_size":64,"num_attention_heads":8,"max_position_embeddings":512})");
  EXPECT_EQ(rope_spec_for(plain).type, RopeType::Default);
  EXPECT_EQ(rope_spec_for(plain).theta, 10000);
}

TEST(HfConfig, PerLayerTypeRopeParameters) {
  // Gemma-3 style v5 config: one dict per layer type.
  auto c = parse(R"({"hidden_size":2560,"num_attention_heads":8,"head_dim":256,"max_position_embeddings":131072,
      "layer_types":["sliding_attention","sliding_attention","full_attention"],"sliding_window":1024,
      "rope_parameters":{"full_attention":{"rope_type":"linear","factor":8.0,"rope_theta":1000000.0},
                         "sliding_attention":{"rope_type":"default","rope_theta":10000.0}}})");
  ASSERT_EQ(c.rope_parameters_by_layer_type.size(), 2u);
  EXPECT_EQ(rope_spec_for(c).type, RopeType::Linear);  // headline: full attention
  EXPECT_EQ(rope_spec_for(c, "sliding_attention").theta, 10000);
  EXPECT_EQ(rope_spec_for(c, "full_attention").theta, 1e6);
  EXPECT_FALSE(c.sliding_window.has_value());  // hybrid: full layers see everything
  EXPECT_THROW(rope_spec_for(c, "nope"), ConfigError);
}

TEST(HfConfig, HeadDimPartialRotaryAndMla) {
  // Mistral-Nemo: head_dim 128 although hidden/heads = 160.
  auto nemo = parse(R"({"hidden_size":5120,"num_attention_heads":32,"head_dim":128,"max_position_embeddings":1024})");
  EXPECT_EQ(nemo.head_dim, 128);
  auto prf = parse(R"({"hidden_size":3072,"num_attention_heads":24,"partial_rotary_factor":0.75,"max_position_embeddings":4096})");
  EXPECT_EQ(rope_spec_for(prf).rotary_dim, 96);
  EXPECT_EQ(rope_spec_for(prf).head_dim, 128);
  auto ds = load_model_config(test::model_config("deepseek-v3").string());
  EXPECT_EQ(ds.rotary_head_dim, 64);
  EXPECT_TRUE(ds.uses_mla);
  EXPECT_EQ(rope_spec_for(ds).rotary_dim, 64);
  // An absurd factor saturates (the fuzzer found 128 × 3.3e7 converted to int) and validation names it.
  auto huge = parse(R"({"hidden_size":3072,"num_attention_heads":24,"partial_rotary_factor":3.3e7,"max_position_embeddings":4096})");
  EXPECT_EQ(huge.rotary_dim(), std::numeric_limits<int>::max());
  auto negative = parse(R"({"hidden_size":3072,"num_attention_heads":24,"partial_rotary_factor":-1e30,"max_position_embeddings":4096})");
  EXPECT_EQ(negative.rotary_dim(), -1);
}

TEST(HfConfig, SlidingWindowAndAlibi) {
  auto mistral = load_model_config(test::model_config("mistral-7b-v0.1").string());
  EXPECT_EQ(mistral.sliding_window, 4096);
  auto qwen = load_model_config(test::model_config("qwen2.5-7b-instruct-yarn").string());
  EXPECT_FALSE(qwen.sliding_window.has_value());  // use_sliding_window: false
  auto bloom = load_model_config(test::model_config("bloom-560m").string());
  EXPECT_TRUE(bloom.alibi);
  EXPECT_EQ(bloom.num_attention_heads, 16);
  EXPECT_THROW(rope_spec_for(bloom), ConfigError);
  auto mpt = load_model_config(test::model_config("mpt-7b").string());
  EXPECT_TRUE(mpt.alibi);
  EXPECT_EQ(mpt.max_position_embeddings, 2048);
  EXPECT_EQ(mpt.hidden_size, 4096);
}

TEST(HfConfig, ErrorsNameFileKeyAndValue) {
  try {
    parse("{not json");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.kind(), ConfigError::Kind::Unreadable);
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos);
  }
  EXPECT_THROW(parse("[1,2]"), ConfigError);
  try {
    auto c = parse(R"({"hidden_size":64,"num_attention_heads":8,"max_position_embeddings":512,
        "rope_scaling":{"rope_type":"linear","factor":"4"}})");
    rope_spec_for(c);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.kind(), ConfigError::Kind::Invalid);
    EXPECT_EQ(e.key(), "rope_scaling.factor");
    EXPECT_EQ(e.value(), "\"4\"");
  }
  try {
    parse(R"({"hidden_size":"big"})");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "hidden_size");
  }
  for (const char* bad : {R"({"factor":0})", R"({"factor":-1})", R"({"factor":1e400})"}) {
    std::string text = std::string(R"({"hidden_size":64,"num_attention_heads":8,"max_position_embeddings":512,"rope_scaling":)") +
                       R"({"rope_type":"linear",)" + std::string(bad).substr(1) + "}";
    bool threw = false;
    try {
      rope_spec_for(parse(text));
    } catch (const ConfigError&) {
      threw = true;
    }
    EXPECT_TRUE(threw) << text;
  }
}

TEST(HfConfig, OverrideReplacesScaling) {
  auto c = load_model_config(test::model_config("codellama-7b").string());
  apply_rope_override(c, R"({"rope_type":"yarn","factor":4,"original_max_position_embeddings":16384})");
  auto s = rope_spec_for(c);
  EXPECT_EQ(s.type, RopeType::Yarn);
  EXPECT_EQ(s.theta, 1e6);  // kept from the model
  EXPECT_EQ(c.rope_source, "--rope-scaling");
  EXPECT_THROW(apply_rope_override(c, "{oops"), ConfigError);
  EXPECT_THROW(apply_rope_override(c, "[]"), ConfigError);
}

}  // namespace
}  // namespace ropescale
