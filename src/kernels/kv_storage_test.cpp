#include "ropescale/kernels/kv_storage.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "ropescale/kernels/dtype.h"

namespace ropescale {
namespace {

// Four blocks of exactly representable inputs — mixed signs with ties, a block whose
// largest magnitude is negative (q4_0 keeps its sign), zeros, and values so small that
// q8_0's scale is an f16 subnormal — and what gguf-py 0.19.0's quants.quantize /
// dequantize (written to be bit-exact with ggml-quants.c) make of them.
std::vector<float> reference_input() {
  std::vector<float> x;
  for (int j = 0; j < 32; ++j) x.push_back(static_cast<float>(j * 37 % 61 - 30) / 8.0f);
  for (int j = 0; j < 32; ++j) x.push_back(-static_cast<float>(j * j % 23) * 0.25f);
  for (int j = 0; j < 32; ++j) x.push_back(0.0f);
  for (int j = 0; j < 32; ++j) x.push_back(std::ldexp(static_cast<float>(j - 16), -20));
  return x;
}

const uint8_t kQ8Bytes[] = {
    0x8f, 0x27, 0x81, 0x1e, 0xb8, 0x55, 0xef, 0x89, 0x26, 0xc1, 0x5d, 0xf8, 0x92, 0x2f, 0xc9, 0x66, 0x00,
    0x9a, 0x37, 0xd1, 0x6e, 0x08, 0xa3, 0x3f, 0xda, 0x77, 0x11, 0xab, 0x48, 0xe2, 0x7f, 0x19, 0xb4, 0x50,
    0x89, 0x28, 0x00, 0xf9, 0xe4, 0xc0, 0x8f, 0xf2, 0xa4, 0xeb, 0x81, 0xab, 0xc8, 0xd6, 0xd6, 0xc8, 0xab,
    0x81, 0xeb, 0xa4, 0xf2, 0x8f, 0xc0, 0xe4, 0xf9, 0x00, 0xf9, 0xe4, 0xc0, 0x8f, 0xf2, 0xa4, 0xeb, 0x81,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x81, 0x89, 0x91, 0x99, 0xa1, 0xa9, 0xb1, 0xb9, 0xc0, 0xc8, 0xd0, 0xd8, 0xe0, 0xe8, 0xf0,
    0xf8, 0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38, 0x40, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77,
};
const float kQ8Values[] = {
    -3.7497711181640625f, 0.885772705078125f, -2.1258544921875f, 2.5096893310546875f, -0.5019378662109375f, -3.5135650634765625f, 1.121978759765625f, -1.8601226806640625f,
    2.7458953857421875f, -0.2362060546875f, -3.247833251953125f, 1.3877105712890625f, -1.6239166259765625f, 3.011627197265625f, 0.0f, -3.011627197265625f,
    1.6239166259765625f, -1.3877105712890625f, 3.247833251953125f, 0.2362060546875f, -2.7458953857421875f, 1.8601226806640625f, -1.121978759765625f, 3.5135650634765625f,
    0.5019378662109375f, -2.5096893310546875f, 2.1258544921875f, -0.885772705078125f, 3.7497711181640625f, 0.7381439208984375f, -2.24395751953125f, 2.362060546875f,
    0.0f, -0.248016357421875f, -0.9920654296875f, -2.267578125f, -4.003692626953125f, -0.49603271484375f, -3.2596435546875f, -0.744049072265625f,
    -4.499725341796875f, -3.011627197265625f, -1.984130859375f, -1.48809814453125f, -1.48809814453125f, -1.984130859375f, -3.011627197265625f, -4.499725341796875f,
    -0.744049072265625f, -3.2596435546875f, -0.49603271484375f, -4.003692626953125f, -2.267578125f, -0.9920654296875f, -0.248016357421875f, 0.0f,
    -0.248016357421875f, -0.9920654296875f, -2.267578125f, -4.003692626953125f, -0.49603271484375f, -3.2596435546875f, -0.744049072265625f, -4.499725341796875f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    -1.5139579772949219e-05f, -1.4185905456542969e-05f, -1.3232231140136719e-05f, -1.2278556823730469e-05f, -1.1324882507324219e-05f, -1.0371208190917969e-05f, -9.417533874511719e-06f, -8.463859558105469e-06f,
    -7.62939453125e-06f, -6.67572021484375e-06f, -5.7220458984375e-06f, -4.76837158203125e-06f, -3.814697265625e-06f, -2.86102294921875e-06f, -1.9073486328125e-06f, -9.5367431640625e-07f,
    0.0f, 9.5367431640625e-07f, 1.9073486328125e-06f, 2.86102294921875e-06f, 3.814697265625e-06f, 4.76837158203125e-06f, 5.7220458984375e-06f, 6.67572021484375e-06f,
    7.62939453125e-06f, 8.463859558105469e-06f, 9.417533874511719e-06f, 1.0371208190917969e-05f, 1.1324882507324219e-05f, 1.2278556823730469e-05f, 1.3232231140136719e-05f, 1.4185905456542969e-05f,
};
const uint8_t kQ4Bytes[] = {
    0x80, 0x37, 0xb0, 0x5a, 0xf3, 0x9d, 0x27, 0xc1, 0x6a, 0xf4, 0x9e, 0x37, 0xd1, 0x6b, 0xf5, 0xae, 0x38,
    0xd2, 0x80, 0x38, 0x78, 0x28, 0x76, 0x14, 0x41, 0x67, 0x82, 0x87, 0x80, 0x63, 0x44, 0x15, 0x75, 0x24,
    0x73, 0x00, 0x00, 0x80, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88,
    0x88, 0x88, 0x88, 0x20, 0x00, 0x80, 0x91, 0x91, 0xa2, 0xa2, 0xb3, 0xb3, 0xc4, 0xc4, 0xd5, 0xd5, 0xe6,
    0xe6, 0xf7, 0xf7, 0xf8,
};
const float kQ4Values[] = {
    -3.75f, 0.9375f, -2.34375f, 2.34375f, -0.46875f, -3.28125f, 0.9375f, -1.875f,
    2.8125f, -0.46875f, -3.28125f, 1.40625f, -1.40625f, 2.8125f, 0.0f, -2.8125f,
    1.40625f, -1.40625f, 3.28125f, 0.46875f, -2.8125f, 1.875f, -0.9375f, 3.28125f,
    0.46875f, -2.34375f, 2.34375f, -0.9375f, 3.28125f, 0.9375f, -2.34375f, 2.34375f,
    0.0f, 0.0f, -1.125f, -2.25f, -3.9375f, -0.5625f, -3.375f, -0.5625f,
    -4.5f, -2.8125f, -2.25f, -1.6875f, -1.6875f, -2.25f, -2.8125f, -4.5f,
    -0.5625f, -3.375f, -0.5625f, -3.9375f, -2.25f, -1.125f, 0.0f, 0.0f,
    0.0f, -1.125f, -2.25f, -3.9375f, -0.5625f, -3.375f, -0.5625f, -4.5f,
    -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f,
    -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f,
    -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f,
    -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f,
    -1.52587890625e-05f, -1.33514404296875e-05f, -1.33514404296875e-05f, -1.1444091796875e-05f, -1.1444091796875e-05f, -9.5367431640625e-06f, -9.5367431640625e-06f, -7.62939453125e-06f,
    -7.62939453125e-06f, -5.7220458984375e-06f, -5.7220458984375e-06f, -3.814697265625e-06f, -3.814697265625e-06f, -1.9073486328125e-06f, -1.9073486328125e-06f, 0.0f,
    0.0f, 1.9073486328125e-06f, 1.9073486328125e-06f, 3.814697265625e-06f, 3.814697265625e-06f, 5.7220458984375e-06f, 5.7220458984375e-06f, 7.62939453125e-06f,
    7.62939453125e-06f, 9.5367431640625e-06f, 9.5367431640625e-06f, 1.1444091796875e-05f, 1.1444091796875e-05f, 1.33514404296875e-05f, 1.33514404296875e-05f, 1.33514404296875e-05f,
};

template <size_t NB, size_t NV>
void expect_reference(KvType type, const uint8_t (&bytes)[NB], const float (&values)[NV]) {
  const std::vector<float> x = reference_input();
  ASSERT_EQ(x.size(), NV);
  ASSERT_EQ(NB, kv_row_bytes(type, 128));
  std::vector<uint8_t> q(NB);
  kv_store_rows(type, x.data(), q.data(), 1, 128);
  for (size_t i = 0; i < NB; ++i) EXPECT_EQ(q[i], bytes[i]) << to_string(type) << " byte " << i;
  std::vector<float> y(NV);
  kv_load_rows(type, bytes, y.data(), 1, 128);
  for (size_t i = 0; i < NV; ++i) EXPECT_EQ(y[i], values[i]) << to_string(type) << " value " << i;
}

TEST(KvStorage, Q8_0MatchesGgml) { expect_reference(KvType::Q8_0, kQ8Bytes, kQ8Values); }
TEST(KvStorage, Q4_0MatchesGgml) { expect_reference(KvType::Q4_0, kQ4Bytes, kQ4Values); }

// Round-trip bounds from the formats. With d the f32 scale and d16 its f16 rounding
// (|d − d16| ≤ 2⁻¹¹·d in f16's normal range):
//   q8_0: d = max|x| / 127, q = round(x / d):        |x − q·d16| ≤ d/2 + 127·2⁻¹¹·d
//   q4_0: |d| = max|x| / 8, the largest-magnitude value maps to −8 exactly; the other
//         side is clamped at level 15 (= +7), so x/d > 7.5 may err by up to |d|:
//         |x − x̂| ≤ |d|/2 + 8·2⁻¹¹·|d| where x/d ≤ 7.5, ≤ |d| + 8·2⁻¹¹·|d| everywhere.
TEST(KvStorage, RoundTripWithinTheFormatsBounds) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0, 1);
  for (float scale : {1e-2f, 1.0f, 37.0f, 3000.0f}) {
    std::vector<float> x(32 * 64);
    for (auto& e : x) e = normal(rng) * scale;
    x[5] = 9 * scale, x[70] = -11 * scale;  // outliers dominate their blocks
    for (KvType type : {KvType::Q8_0, KvType::Q4_0}) {
      std::vector<uint8_t> q(kv_row_bytes(type, 64) * 32);
      std::vector<float> y(x.size());
      kv_store_rows(type, x.data(), q.data(), 32, 64);
      kv_load_rows(type, q.data(), y.data(), 32, 64);
      for (size_t b = 0; b < x.size() / 32; ++b) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j)
          if (std::fabs(x[b * 32 + j]) > amax) amax = std::fabs(x[b * 32 + j]), max = x[b * 32 + j];
        for (int j = 0; j < 32; ++j) {
          const float v = x[b * 32 + j], err = std::fabs(v - y[b * 32 + j]);
          const float slack = 1e-6f * amax;  // f32 arithmetic of x / d and q · d16
          if (type == KvType::Q8_0) {
            const float d = amax / 127;
            ASSERT_LE(err, d / 2 + 127 * std::ldexp(d, -11) + slack) << "q8_0 scale " << scale << " block " << b;
          } else {
            const float d = amax / 8, f16 = 8 * std::ldexp(d, -11);
            const bool clamped = v / (max / -8) > 7.5f;
            ASSERT_LE(err, (clamped ? d : d / 2) + f16 + slack) << "q4_0 scale " << scale << " block " << b << " value " << j;
  for (KvType t : {KvType::F32, KvType::F16, KvType::Q8_0, KvType::Q4_0}) {
    EXPECT_EQ(parse_kv_type(to_string(t)), t);
  }
          }
        }
      }
    }
  }
}

TEST(KvStorage, BytesPerRowAndWhatFits) {
  EXPECT_EQ(kv_row_bytes(KvType::F32, 128), 512u);
  EXPECT_EQ(kv_row_bytes(KvType::F16, 128), 256u);
  EXPECT_EQ(kv_row_bytes(KvType::Q8_0, 128), 4u * 34);
  EXPECT_EQ(kv_row_bytes(KvType::Q4_0, 128), 4u * 18);
  // 2 × layers × tokens × kv_heads × row bytes.
  EXPECT_EQ(kv_cache_bytes(KvType::Q8_0, 32, 8, 128, 8192), size_t{2} * 32 * 8192 * 8 * 136);
  EXPECT_FALSE(kv_type_fits(KvType::Q8_0, 8));
  EXPECT_TRUE(kv_type_fits(KvType::F16, 8));
  try {
    kv_row_bytes(KvType::Q4_0, 48);
    FAIL() << "q4_0 with head_dim 48 was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("head_dim a multiple of 32 (this model's is 48)"), std::string::npos) << e.what();
  }
  for (KvType t : {KvType::F32, KvType::F16, KvType::Q8_0, KvType::Q4_0}) EXPECT_EQ(parse_kv_type(to_string(t)), t);
  EXPECT_FALSE(parse_kv_type("q8"));
  EXPECT_FALSE(parse_kv_type("Q8_0"));
}

}  // namespace
}  // namespace ropescale
