// Effective context: the walk up from the trained length, on hand-built scores.
#include "ropescale/eval/effective_context.h"

#include <gtest/gtest.h>

#include <cmath>

namespace ropescale {
namespace {

TEST(EffectiveContext, LongestLengthWithinTheBandOfTheTrainedLengthsScore) {
  const EffectiveContextRule acc{0.1, true, 0.5};
  // Unsorted input; the reference is the longest length ≤ trained (512 → 0.9).
  auto e = effective_context({{2048, 0.85}, {256, 0.95}, {512, 0.9}, {1024, 0.82}, {4096, 0.3}}, 512, acc);
  EXPECT_EQ(e.reference_length, 512);
  EXPECT_DOUBLE_EQ(e.reference, 0.9);
  EXPECT_EQ(e.effective, 2048);  // 0.82 and 0.85 stay within 0.1; 4096 does not
  // The walk stops at the first length out of the band, even if a longer one recovers.
  e = effective_context({{512, 0.9}, {1024, 0.7}, {2048, 0.9}}, 512, acc);
  EXPECT_EQ(e.effective, 512);
  // No length ≤ trained: the shortest tested is the reference.
  e = effective_context({{1024, 0.9}, {2048, 0.9}}, 512, acc);
  EXPECT_EQ(e.reference_length, 1024);
  EXPECT_EQ(e.effective, 2048);
}

TEST(EffectiveContext, NoneWhenTheModelFailsAtItsTrainedLength) {
  const auto e = effective_context({{512, 0.2}, {1024, 0.2}}, 512, {0.1, true, 0.5});
  EXPECT_EQ(e.effective, 0);
  EXPECT_NE(e.why.find("does not do this task"), std::string::npos) << e.why;
  EXPECT_EQ(effective_context({}, 512, {}).effective, 0);
}

TEST(EffectiveContext, NeedleNllLowerIsBetter) {
  const EffectiveContextRule nll{0.5, false, 0};
  const auto e = effective_context({{512, 1.0}, {1024, 1.4}, {2048, 1.6}, {4096, 0.2}}, 512, nll);
  EXPECT_EQ(e.effective, 1024);  // 1.6 is more than +0.5 above 1.0
  EXPECT_EQ(effective_context({{512, 3.0}, {1024, 3.1}}, 512, nll).effective, 1024);  // no minimum for NLL
  EXPECT_EQ(effective_context({{512, 1.0}, {1024, std::nan("")}}, 512, nll).effective, 512);
  // Worse than a uniform guess at the trained length: the model does not know the answer there.
  const auto e2 = effective_context({{512, 6.0}, {1024, 6.1}}, 512, {0.5, false, std::log(259.0)});
  EXPECT_EQ(e2.effective, 0);
  EXPECT_NE(e2.why.find("uniform guess"), std::string::npos) << e2.why;
}

}  // namespace
}  // namespace ropescale
