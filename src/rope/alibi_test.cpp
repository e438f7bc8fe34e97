#include "ropescale/rope/alibi.h"

#include <cmath>

#include <gtest/gtest.h>

namespace ropescale {
namespace {

TEST(Alibi, PowerOfTwoHeads) {
  // Press et al.: 8 heads → 1/2, 1/4, …, 1/256.
  auto s = alibi_slopes(8);
  ASSERT_EQ(s.size(), 8u);
  for (int h = 0; h < 8; ++h) EXPECT_DOUBLE_EQ(s[h], std::ldexp(1.0, -(h + 1)));
  // 16 heads → 2^(−0.5·(h+1)).
  auto s16 = alibi_slopes(16);
  for (int h = 0; h < 16; ++h) EXPECT_NEAR(s16[h], std::pow(2.0, -0.5 * (h + 1)), 1e-15);
}

TEST(Alibi, NonPowerOfTwoHeads) {
  // 12 heads: the 8-head slopes, then odd powers of 2^(−0.5): 2^−0.5, 2^−1.5, 2^−2.5, 2^−3.5.
  auto s = alibi_slopes(12);
  ASSERT_EQ(s.size(), 12u);
  for (int h = 0; h < 8; ++h) EXPECT_DOUBLE_EQ(s[h], std::ldexp(1.0, -(h + 1)));
  const double want[] = {std::pow(2.0, -0.5), std::pow(2.0, -1.5), std::pow(2.0, -2.5), std::pow(2.0, -3.5)};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(s[8 + i], want[i], 1e-15);
  // 1 head: 2^−8. 3 heads: [2^−4, 2^−8, 2^−2].
  EXPECT_DOUBLE_EQ(alibi_slopes(1)[0], std::ldexp(1.0, -8));
  auto s3 = alibi_slopes(3);
  EXPECT_DOUBLE_EQ(s3[0], std::ldexp(1.0, -4));
  EXPECT_DOUBLE_EQ(s3[1], std::ldexp(1.0, -8));
  EXPECT_DOUBLE_EQ(s3[2], std::ldexp(1.0, -2));
}

TEST(Alibi, MaxBiasAndErrors) {
  auto s = alibi_slopes(4, 16.0);  // m_h = 2^(−16(h+1)/4)
  EXPECT_DOUBLE_EQ(s[0], std::ldexp(1.0, -4));
  EXPECT_DOUBLE_EQ(s[3], std::ldexp(1.0, -16));
  EXPECT_THROW(alibi_slopes(0), std::invalid_argument);
  EXPECT_THROW(alibi_slopes(8, 0.0), std::invalid_argument);
  EXPECT_THROW(alibi_slopes(8, NAN), std::invalid_argument);
}

}  // namespace
}  // namespace ropescale
