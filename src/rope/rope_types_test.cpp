// The registry itself: every type has exactly one row, names and aliases
// resolve to it, the parameter rows are well formed, and the pure-math
// questions (validate, frequencies, reach) answer from the row. The walk of
// every row through the other layers is src/eval/rope_types_walk_test.cpp.
#include "ropescale/rope/rope_types.h"

#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "ropescale/rope/frequencies.h"

namespace ropescale {
namespace {

constexpr RopeType kEveryType[] = {RopeType::Default, RopeType::Linear,      RopeType::Ntk,      RopeType::Dynamic,
                                   RopeType::Yarn,    RopeType::DynamicYarn, RopeType::LongRope, RopeType::Llama3};

TEST(RopeTypes, EveryTypeHasExactlyOneRow) {
  std::set<RopeType> seen;
  for (const auto& r : rope_types()) EXPECT_TRUE(seen.insert(r.type).second) << r.name << " has two rows";
  for (RopeType t : kEveryType) {
    EXPECT_TRUE(seen.count(t)) << "RopeType " << int(t) << " has no row";
    EXPECT_EQ(rope_type_info(t).type, t);
  }
  EXPECT_EQ(seen.size(), std::size(kEveryType));
}

TEST(RopeTypes, NamesAndAliasesResolveToTheirRowAndNowhereElse) {
  std::set<std::string_view> names;
  for (const auto& r : rope_types()) {
    EXPECT_TRUE(names.insert(r.name).second) << r.name;
    EXPECT_EQ(find_rope_type(r.name), &r);
    EXPECT_EQ(parse_rope_type(to_string(r.type)), r.type);
    EXPECT_EQ(find_rope_type(r.shorthand), &r) << "shorthand " << r.shorthand;
    for (auto a : r.aliases) {
      EXPECT_TRUE(names.insert(a).second) << "alias " << a << " is used twice";
      EXPECT_EQ(find_rope_type(a), &r) << a;
    }
    EXPECT_FALSE(r.summary.empty()) << r.name;
    EXPECT_EQ(r.colour.size(), 7u) << r.name;
  }
  // The aliases users meet (HF's legacy "su", llama.cpp's "none").
  EXPECT_EQ(parse_rope_type("su"), RopeType::LongRope);
  EXPECT_EQ(parse_rope_type("none"), RopeType::Default);
  EXPECT_EQ(parse_rope_type("ntk-aware"), RopeType::Ntk);
  EXPECT_EQ(find_rope_type("ntk-by-parts"), nullptr);
  EXPECT_EQ(find_rope_type(""), nullptr);
  EXPECT_EQ(rope_type_names(), "default, linear, ntk, dynamic, yarn, dynamic_yarn, longrope, llama3");
}

TEST(RopeTypes, ParameterRowsAreWellFormed) {
  for (const auto& r : rope_types()) {
    SCOPED_TRACE(std::string(r.name));
    std::set<std::string_view> keys;
    bool seen_length = false;
    for (const auto& p : r.params) {
      EXPECT_TRUE(keys.insert(p.key).second) << p.key << " twice";
      // Each kind lands in a field of its own type.
      switch (p.kind) {
        case ParamKind::Factor:
        case ParamKind::Number: EXPECT_TRUE(std::holds_alternative<double RopeSpec::*>(p.field)) << p.key; break;
        case ParamKind::Length: EXPECT_TRUE(std::holds_alternative<int64_t RopeSpec::*>(p.field)) << p.key; break;
        case ParamKind::OptionalNumber:
          EXPECT_TRUE(std::holds_alternative<std::optional<double> RopeSpec::*>(p.field)) << p.key;
          break;
        case ParamKind::Flag: EXPECT_TRUE(std::holds_alternative<bool RopeSpec::*>(p.field)) << p.key; break;
        case ParamKind::PairList:
          EXPECT_TRUE(std::holds_alternative<std::vector<double> RopeSpec::*>(p.field)) << p.key;
          break;
        case ParamKind::Informational: EXPECT_TRUE(std::holds_alternative<std::monostate>(p.field)) << p.key; break;
      }
      if (p.kind == ParamKind::Length) seen_length = true;
      // HF v5's derived factor needs the original length read first.
      if (p.when_missing == ParamDefault::LengthRatio) {
        EXPECT_TRUE(seen_length) << p.key << " before the length";
      }
    }
    EXPECT_EQ(r.needs_original_length, keys.count("original_max_position_embeddings") == 1);
    if (r.shorthand_arg == ShorthandArg::Factor || r.shorthand_arg == ShorthandArg::OptionalFactor) {
      EXPECT_NE(find_param(r, "factor"), nullptr) << "a shorthand factor needs a factor key";
    }
    if (r.gguf == GgufEncoding::ScalingKeys) {
      EXPECT_FALSE(r.ggml_name.empty());
    }
    // A length-dependent type cannot be one static llama.cpp setting.
    if (r.length_dependent) {
      EXPECT_NE(r.llama_cpp, EngineSupport::Exact);
    }
    if (r.length_following_variant) {
      EXPECT_TRUE(rope_type_info(*r.length_following_variant).length_dependent);
    }
  }
}

TEST(RopeTypes, ThetaAndFactorHaveOneRuleEach) {
  EXPECT_EQ(theta_problem(10000), "");
  EXPECT_NE(theta_problem(1.0), "");
  EXPECT_NE(theta_problem(0.5), "");  // frequencies would grow with the pair index
  EXPECT_NE(theta_problem(-5), "");
  EXPECT_NE(theta_problem(std::nan("")), "");
  EXPECT_NE(theta_problem(INFINITY), "");
  EXPECT_EQ(factor_problem(0.5), "");
  EXPECT_EQ(factor_problem(1e6), "");
  EXPECT_NE(factor_problem(1.000001e6), "");
  EXPECT_NE(factor_problem(0), "");
  EXPECT_NE(factor_problem(-2), "");
  EXPECT_NE(factor_problem(std::nan("")), "");
  RopeSpec s;
  s.rotary_dim = s.head_dim = 64;
  s.theta = 0.5;
  EXPECT_NE(validate(s).find("rope_theta"), std::string::npos);
  s.theta = 10000;
  s.factor = 1e7;
  EXPECT_NE(validate(s).find("absurd"), std::string::npos);
}

TEST(RopeTypes, ReachAndDynamismComeFromTheRow) {
  RopeSpec s;
  s.rotary_dim = s.head_dim = 64;
  s.factor = 4;
  s.original_max_position = 512;
  s.max_position = 512;
  s.low_freq_factor = 1, s.high_freq_factor = 4;
  s.short_factor.assign(32, 1.0), s.long_factor.assign(32, 2.0);
  for (const auto& r : rope_types()) {
    s.type = r.type;
    EXPECT_EQ(rope_reach(s, 512), r.reach_scales_with_factor ? 2048 : 512) << r.name;
    EXPECT_EQ(s.is_dynamic(), r.length_dependent) << r.name;
    ASSERT_EQ(validate(s), "") << r.name;
    // Length-dependent rows give other frequencies past the original length; static rows never do.
    const auto a = compute_frequencies(s, 256), b = compute_frequencies(s, 4096);
    bool differ = a.attention_factor != b.attention_factor;
    for (size_t j = 0; j < a.inv_freq.size(); ++j) differ |= a.inv_freq[j] != b.inv_freq[j];
    EXPECT_EQ(differ, r.length_dependent) << r.name;
  }
}

}  // namespace
}  // namespace ropescale
