#include "ropescale/kernels/simd.h"

#include <gtest/gtest.h>

#include <cctype>
#include <stdexcept>

#include "ropescale/kernels/attention.h"
#include "ropescale/kernels/rotary.h"

namespace ropescale {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Each target the kernels were compiled for is the one they then run on; the CPU's best comes back after.
TEST(Simd, LimitRunsTheKernelsOnTheNamedTarget) {
  const auto targets = simd_targets();
  ASSERT_GE(targets.size(), 2u) << "expected a SIMD target and the scalar fallback";
  for (const std::string& t : targets) {
    limit_simd(t);
    EXPECT_EQ(lower(attention_simd_target()), t);
    EXPECT_EQ(lower(rotary_simd_target()).rfind(t, 0), 0u) << rotary_simd_target();  // may add what it found ("+bf16")
  }
  limit_simd(targets.front());
  EXPECT_EQ(lower(attention_simd_target()), targets.front());
}

TEST(Simd, UnknownTargetNamesTheAvailableOnes) {
  try {
    limit_simd("avx9000");
    FAIL() << "accepted an unknown target";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("avx9000"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(simd_targets().back()), std::string::npos) << e.what();
  }
  EXPECT_EQ(lower(attention_simd_target()), simd_targets().front());  // unchanged
}

}  // namespace
}  // namespace ropescale
