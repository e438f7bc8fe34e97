// Golden gates on hand-built eval_json documents: what must pass passes, what
// must fail fails, each gate in its own unit.
#include "ropescale/eval/golden.h"

#include <gtest/gtest.h>

namespace ropescale {
namespace {

using nlohmann::json;

json report(double short_ppl, double long_ppl, int exact, double passkey_nll, double task_score, double task_nll) {
  return {{"trained_context", 256},
          {"results", {{{"method", "yarn:4"}, {"ctx", 256}, {"ppl", short_ppl}}, {{"method", "yarn:4"}, {"ctx", 1024}, {"ppl", long_ppl}}}},
          {"passkey", {{"cells", {{{"method", "yarn:4"}, {"length", 1024}, {"depth", 0.0}, {"trials", 2}, {"exact", exact},
                                   {"needle_nll", passkey_nll}},
                                  {{"method", "yarn:4"}, {"length", 1024}, {"depth", 1.0}, {"trials", 2}, {"exact", 2},
                                   {"needle_nll", passkey_nll}}}}}},
          {"tasks", {{"cells", {{{"method", "yarn:4"}, {"task", "kv"}, {"length", 1024}, {"depth", 0.5}, {"trials", 4},
                                 {"exact", 2}, {"score", task_score}, {"needle_nll", task_nll}}}}}}};
}

const GateCheck* find(const std::vector<GateCheck>& checks, const std::string& kind) {
  for (const auto& c : checks)
    if (c.kind == kind) return &c;
  return nullptr;
}

TEST(Golden, TheSameRunPassesEveryGate) {
  const json r = report(5.0, 6.0, 2, 0.8, 0.5, 1.2);
  const auto checks = compare_golden(r, r, GoldenGates{});
  ASSERT_EQ(checks.size(), 2u + 2u + 2u);  // two ppl, passkey exact + NLL, kv score + NLL
  for (const auto& c : checks) EXPECT_TRUE(c.pass) << c.kind;
  EXPECT_NEAR(find(checks, "passkey exact")->before, 100.0, 1e-9);  // 4 of 4, in points
}

TEST(Golden, EachGateFailsPastItsLimit) {
  const json before = report(5.0, 6.0, 2, 0.8, 0.5, 1.2);
  // Short ppl +2 % (limit 1 %), long +4 % (limit 5 %): one fails, one passes.
  auto c = compare_golden(before, report(5.1, 6.24, 2, 0.8, 0.5, 1.2), GoldenGates{});
  EXPECT_FALSE(find(c, "short ppl")->pass);
  EXPECT_NEAR(find(c, "short ppl")->change, 2.0, 1e-9);
  EXPECT_NE(find(c, "short ppl")->why.find("+2.00 %"), std::string::npos) << find(c, "short ppl")->why;
  EXPECT_TRUE(find(c, "long ppl")->pass);
  // Passkey: 4/4 → 2/4 exact is −50 points; needle NLL +0.3 nats.
  c = compare_golden(before, report(5.0, 6.0, 0, 1.1, 0.5, 1.2), GoldenGates{});
  EXPECT_FALSE(find(c, "passkey exact")->pass);
  EXPECT_NEAR(find(c, "passkey exact")->change, -50.0, 1e-9);
  EXPECT_FALSE(find(c, "passkey needle NLL")->pass);
  // Task score −5 points passes a 10-point gate; −20 fails; NLL falling is never a failure.
  c = compare_golden(before, report(5.0, 6.0, 2, 0.8, 0.45, 0.2), GoldenGates{});
  EXPECT_TRUE(find(c, "kv score")->pass);
  EXPECT_TRUE(find(c, "kv needle NLL")->pass);
  c = compare_golden(before, report(5.0, 6.0, 2, 0.8, 0.3, 1.2), GoldenGates{});
  EXPECT_FALSE(find(c, "kv score")->pass);
  // Looser gates let the same change through.
  GoldenGates loose;
  loose.short_ppl_percent = 3;
  EXPECT_TRUE(find(compare_golden(before, report(5.1, 6.0, 2, 0.8, 0.5, 1.2), loose), "short ppl")->pass);
}

TEST(Golden, AResultMissingFromTheNewRunFails) {
  const json before = report(5.0, 6.0, 2, 0.8, 0.5, 1.2);
  json after = before;
  after["results"].erase(1);
  after.erase("tasks");
  const auto c = compare_golden(before, after, GoldenGates{});
  EXPECT_FALSE(find(c, "long ppl")->pass);
  EXPECT_EQ(find(c, "long ppl")->why, "missing from the new run");
  EXPECT_FALSE(find(c, "kv score")->pass);
  const std::string table = golden_table(c);
  EXPECT_NE(table.find("FAIL: missing from the new run"), std::string::npos) << table;
}

TEST(Golden, GatesRoundTripAndRefuseNonsense) {
  GoldenGates g;
  g.long_ppl_percent = 7.5;
  const GoldenGates back = gates_from_json(gates_json(g));
  EXPECT_DOUBLE_EQ(back.long_ppl_percent, 7.5);
  EXPECT_DOUBLE_EQ(back.short_ppl_percent, 1.0);
  EXPECT_THROW(gates_from_json({{"needle_nll", -1}}), std::invalid_argument);
  EXPECT_THROW(gates_from_json({{"accuracy_points", "ten"}}), std::invalid_argument);
  EXPECT_THROW(gates_from_json(json::array()), std::invalid_argument);
}

}  // namespace
}  // namespace ropescale
