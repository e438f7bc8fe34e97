#include "ropescale/serve/serve_policy.h"

#include <gtest/gtest.h>

#include "tiny_model.h"

namespace ropescale {
namespace {

TEST(ServePolicy, ParsesEveryForm) {
  EXPECT_EQ(parse_serve_policy("").kind, ServePolicy::Kind::Model);
  EXPECT_EQ(parse_serve_policy("model").kind, ServePolicy::Kind::Model);
  EXPECT_EQ(parse_serve_policy("none").kind, ServePolicy::Kind::None);
  EXPECT_EQ(parse_serve_policy("auto").method, "yarn");
  EXPECT_EQ(parse_serve_policy("auto:linear").method, "linear");
  EXPECT_EQ(parse_serve_policy("dynamic").method, "dynamic_yarn");
  EXPECT_EQ(parse_serve_policy("dynamic:dynamic").method, "dynamic");
  EXPECT_EQ(parse_serve_policy(R"({"rope_type":"linear","factor":2})").kind, ServePolicy::Kind::Fixed);
  for (const char* bad : {"auto:dynamic", "auto:longrope", "dynamic:yarn", "sometimes", "{not json", "auto:bogus"})
    EXPECT_THROW(parse_serve_policy(bad), std::invalid_argument) << bad;
}

TEST(ServePolicy, AutoIsPlainWithinTheTrainedContextAndScalesPastIt) {
  const LlamaModel m = test::tiny_llama(16, 32, 1, 2, 1, 259, 64, 3);  // trained context 64
  const ServePolicy automatic = parse_serve_policy("auto");
  CompletionRequest r;
  const RopeChoice short_one = choose_rope(m, r, automatic, 64);
  EXPECT_EQ(short_one.label(), "none");
  EXPECT_EQ(short_one.source, "server policy auto");
  const RopeChoice long_one = choose_rope(m, r, automatic, 65 * 4);  // needs 4.06 → factor 5
  EXPECT_EQ(long_one.setting.spec.type, RopeType::Yarn);
  EXPECT_EQ(long_one.setting.spec.factor, 5.0);
  EXPECT_EQ(long_one.label(), "yarn:5.0");
  EXPECT_FALSE(long_one.recompute_on_change);
  EXPECT_EQ(long_one.describe()["rope_scaling"]["factor"], 5.0);
  // The request's own setting wins, and a dynamic method re-rotates cached keys.
  r.rope_scaling = {{"rope_type", "linear"}, {"factor", 2}};
  EXPECT_EQ(choose_rope(m, r, automatic, 10).label(), "linear:2.0");
  EXPECT_EQ(choose_rope(m, r, automatic, 10).source, "request rope_scaling");
  r.rope_scaling = nullptr;
  r.rope_policy = "dynamic";
  const RopeChoice dynamic = choose_rope(m, r, automatic, 500);
  EXPECT_EQ(dynamic.setting.spec.type, RopeType::DynamicYarn);
  EXPECT_TRUE(dynamic.recompute_on_change);
  r.rope_policy = "none";
  EXPECT_EQ(choose_rope(m, r, automatic, 500).label(), "none");
}

TEST(ServePolicy, InvalidSettingsAre400sInTheRequestsOwnTerms) {
  const LlamaModel m = test::tiny_llama(16, 32, 1, 2, 1, 259, 64, 3);
  CompletionRequest r;
  for (const char* bad : {R"({"rope_type":"yarn","factor":0})", R"({"rope_type":"yarn","factor":1e300})",
                          R"({"rope_type":"bogus"})", R"({"rope_type":"longrope","short_factor":[1],"long_factor":[1]})",
                          R"({"rope_type":"linear","factor":"NaN"})"}) {
    SCOPED_TRACE(bad);
    r.rope_scaling = nlohmann::json::parse(bad);
    try {
      choose_rope(m, r, ServePolicy{}, 10);
      ADD_FAILURE() << "accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.param, "rope_scaling");
      EXPECT_EQ(std::string(e.what()).rfind("rope_scaling", 0), 0u) << e.what();
      EXPECT_EQ(std::string(e.what()).find("--rope-scaling"), std::string::npos) << e.what();
    }
  }
  // auto past its largest factor
  r = CompletionRequest{};
  r.rope_policy = "auto";
  EXPECT_THROW(choose_rope(m, r, ServePolicy{}, 64 * 65), ApiError);
}

}  // namespace
}  // namespace ropescale
