#include "ropescale/eval/eval_method.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "ropescale/config/error.h"
#include "test_support.h"

namespace ropescale {
namespace {

using json = nlohmann::json;

json scaling(const std::string& text, int64_t trained = 512) {
  return json::parse(parse_eval_method(text, trained).rope_scaling);
}

TEST(EvalMethod, ShorthandsBecomeOverrides) {
  EXPECT_EQ(scaling("none"), json::parse(R"({"rope_type":"default"})"));
  // Only the types whose schema has original_max_position_embeddings get it: a linear or
  // ntk dict carrying it is one `check` warns about (unknown-key), and the report recommends it.
  EXPECT_EQ(scaling("linear:4"), json::parse(R"({"rope_type":"linear","factor":4.0})"));
  EXPECT_EQ(scaling("ntk:2.5", 256), json::parse(R"({"rope_type":"ntk","factor":2.5})"));
  EXPECT_EQ(scaling("yarn:8")["original_max_position_embeddings"], 512);
  EXPECT_EQ(scaling("yarn:8")["rope_type"], "yarn");
  EXPECT_EQ(scaling("yarn:8")["factor"], 8.0);
  EXPECT_EQ(scaling("dynamic"), json::parse(R"({"rope_type":"dynamic","factor":1.0})"));
  EXPECT_EQ(scaling("dynamic:2")["factor"], 2.0);
  EXPECT_EQ(scaling("dynamic_yarn"), json::parse(R"({"rope_type":"dynamic_yarn","original_max_position_embeddings":512})"));
  EXPECT_EQ(scaling("llama3:8")["low_freq_factor"], 1.0);
  const auto model = parse_eval_method("model", 512);
  EXPECT_EQ(model.label, "model");
  EXPECT_EQ(model.rope_scaling, "");
  // JSON passes through, compacted; the label is the JSON.
  const auto j = parse_eval_method(R"({ "rope_type": "yarn", "factor": 4, "beta_fast": 16 })", 512);
  EXPECT_EQ(json::parse(j.rope_scaling)["beta_fast"], 16);
  EXPECT_EQ(j.label, j.rope_scaling);
}

TEST(EvalMethod, LongRopeFromAFile) {
  const auto path = test::write_temp("phi.json", R"({"rope_scaling": {"type": "su", "short_factor": [1, 1], "long_factor": [2, 4], "factor": 8}})");
  const json j = scaling("longrope:" + path);
  EXPECT_EQ(j["rope_type"], "longrope");
  EXPECT_FALSE(j.contains("type"));
  EXPECT_EQ(j["long_factor"], json::parse("[2, 4]"));
  EXPECT_EQ(j["original_max_position_embeddings"], 512);
  EXPECT_THROW(parse_eval_method("longrope:/nonexistent.json", 512), ConfigError);
  EXPECT_THROW(parse_eval_method("longrope:" + test::write_temp("nolists.json", R"({"factor": 2})"), 512), ConfigError);
}

TEST(EvalMethod, BadItemsNameThemselves) {
  for (const char* bad : {"linear", "linear:x", "linear:-2", "linear:4x", "yarn:inf", "nope:2", "none:2", "model:1", "{bad"}) {
    try {
      parse_eval_method(bad, 512);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("--methods"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(parse_eval_methods({"none,yarn:2", "yarn:2"}, 512), ConfigError);  // twice
  EXPECT_THROW(parse_eval_methods({","}, 512), ConfigError);                       // nothing
}

TEST(EvalMethod, ListsAndDefaults) {
  const auto ms = parse_eval_methods({"none,linear:2", R"({"rope_type":"yarn","factor":2})", "dynamic_yarn"}, 512);
  ASSERT_EQ(ms.size(), 4u);
  EXPECT_EQ(ms[1].label, "linear:2");
  // An inline dict anywhere in a comma list: split at the commas outside it (and outside its strings).
  const auto mixed = parse_eval_methods(
      {R"(none,{"rope_type":"yarn","factor":2,"beta_fast":8},ntk:2,{"rope_type":"linear","factor":2,"note":"a, b}"})"},
      512);
  ASSERT_EQ(mixed.size(), 4u);
  EXPECT_EQ(mixed[1].label, R"({"beta_fast":8,"factor":2,"rope_type":"yarn"})");
  EXPECT_EQ(mixed[2].label, "ntk:2");
  EXPECT_NE(mixed[3].label.find("a, b}"), std::string::npos);
  EXPECT_THROW(parse_eval_methods({R"(none,{"rope_type":"yarn","factor":2)"}, 512), ConfigError);  // unclosed
  std::vector<std::string> labels;
  for (const auto& m : default_eval_methods(512, 4096)) labels.push_back(m.label);
  EXPECT_EQ(labels, (std::vector<std::string>{"none", "linear:2", "linear:4", "linear:8", "ntk:2", "ntk:4", "ntk:8",
                                              "dynamic", "yarn:2", "yarn:4", "yarn:8", "dynamic_yarn"}));
  labels.clear();
  for (const auto& m : default_eval_methods(256, 4096)) labels.push_back(m.label);
  EXPECT_EQ(labels.size(), 1u + 3 * 4 + 2);  // factors 2, 4, 8, 16
  EXPECT_EQ(default_eval_methods(512, 512).size(), 3u);  // none, dynamic, dynamic_yarn
}

}  // namespace
}  // namespace ropescale
