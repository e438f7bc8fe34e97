#include "ropescale/rope/self_extend.h"

#include <gtest/gtest.h>

namespace ropescale {
namespace {

TEST(SelfExtend, PublishedPositionsByHand) {
  // G = 4, W = 8: the query at 20 keeps keys 13 … 20 at exact distances 7 … 0; key 12 is grouped:
  // q at ⌊20/4⌋ + 8 − ⌊8/4⌋ = 11, k at ⌊12/4⌋ = 3 → distance 8, continuing the neighbours'.
  const SelfExtend se{4, 8};
  EXPECT_TRUE(self_extend_neighbour(se, 20, 13));
  EXPECT_EQ(self_extend_distance(se, 20, 13), 7);
  EXPECT_EQ(self_extend_distance(se, 20, 20), 0);
  EXPECT_FALSE(self_extend_neighbour(se, 20, 12));
  EXPECT_EQ(self_extend_query_position(se, 20), 11);
  EXPECT_EQ(self_extend_key_position(se, 12), 3);
  EXPECT_EQ(self_extend_distance(se, 20, 12), 8);
  EXPECT_EQ(self_extend_distance(se, 20, 3), 11);  // ⌊3/4⌋ = 0
  EXPECT_EQ(self_extend_distance(se, 20, 0), 11);
  // The largest distance at p: ⌊p/G⌋ + W − ⌊W/G⌋ (key 0): 1000 tokens with G = 4, W = 64 → 250 + 48 = 298.
  EXPECT_EQ(self_extend_distance({4, 64}, 1000, 0), 298);
  // Distances never grow as the key moves away by less than a group.
  const SelfExtend s2{3, 10};
  for (int64_t k = 0; k + 1 <= 50; ++k) EXPECT_GE(self_extend_distance(s2, 50, k), self_extend_distance(s2, 50, k + 1)) << k;
}

TEST(SelfExtend, GroupOneIsPlainRope) {
  const SelfExtend se{1, 16};
  for (int64_t p = 0; p < 100; p += 7)
    for (int64_t k = 0; k <= p; ++k) EXPECT_EQ(self_extend_distance(se, p, k), p - k);
}

TEST(SelfExtend, Validation) {
  EXPECT_THROW(validate(SelfExtend{0, 8}), std::invalid_argument);
  EXPECT_THROW(validate(SelfExtend{4, 0}), std::invalid_argument);
  EXPECT_THROW(validate(SelfExtend{1, -1}), std::invalid_argument);
  EXPECT_NO_THROW(validate(SelfExtend{1, 0}));
  EXPECT_FALSE(SelfExtend{}.enabled());
  EXPECT_NO_THROW(validate(SelfExtend{8, 512}));
}

}  // namespace
}  // namespace ropescale
