#include "ropescale/rope/cos_sin_table.h"

#include <cmath>

#include <gtest/gtest.h>

namespace ropescale {
namespace {

TEST(CosSinTable, Llama31SamplesFromReference) {
  // §6.1 f64 samples: p = 8191, j = 29 → cos 0.450764437, sin −0.892642942;
  //                   p = 100000, j = 35 → cos −0.991374927, sin −0.131056298.
  RopeSpec s;
  s.type = RopeType::Llama3;
  s.rotary_dim = s.head_dim = 128;
  s.theta = 500000;
  s.factor = 8;
  s.original_max_position = 8192;
  auto f = compute_frequencies(s);
  auto t = build_cos_sin_table(f, 8190, 8192);
  EXPECT_EQ(t.positions, 2);
  EXPECT_NEAR(t.cos_at(8191, 29), 0.450764437, 2e-7);
  EXPECT_NEAR(t.sin_at(8191, 29), -0.892642942, 2e-7);
  auto far = build_cos_sin_table(f, 100000, 100001);
  EXPECT_NEAR(far.cos_at(100000, 35), -0.991374927, 2e-7);
  EXPECT_NEAR(far.sin_at(100000, 35), -0.131056298, 2e-7);
}

TEST(CosSinTable, FoldsAttentionFactor) {
  RopeFrequencies f;
  f.inv_freq = {1.0, 0.5};
  f.attention_factor = 1.5;
  auto t = build_cos_sin_table(f, 0, 3);
  EXPECT_FLOAT_EQ(t.cos_at(0, 0), 1.5f);
  EXPECT_FLOAT_EQ(t.sin_at(0, 1), 0.0f);
  EXPECT_NEAR(t.cos_at(2, 1), 1.5 * std::cos(1.0), 1e-7);
  EXPECT_NEAR(t.sin_at(2, 0), 1.5 * std::sin(2.0), 1e-7);
  // Each pair's (cos, sin) has norm = attention factor.
  for (int p = 0; p < 3; ++p)
    for (int j = 0; j < 2; ++j) EXPECT_NEAR(std::hypot(t.cos_at(p, j), t.sin_at(p, j)), 1.5, 1e-6);
}

TEST(CosSinTable, EmptyAndInvalidRanges) {
  RopeFrequencies f;
  f.inv_freq = {1.0};
  EXPECT_EQ(build_cos_sin_table(f, 5, 5).cos.size(), 0u);
  EXPECT_THROW(build_cos_sin_table(f, 5, 4), std::invalid_argument);
  EXPECT_THROW(build_cos_sin_table(f, -1, 4), std::invalid_argument);
}

}  // namespace
}  // namespace ropescale
