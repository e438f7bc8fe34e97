#include "ropescale/kernels/rotary.h"

#include <cmath>
#include <cstring>
#include <numbers>
#include <random>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include "ropescale/rope/frequencies.h"
#include "rotary_rows.h"

namespace ropescale {
namespace {

constexpr double kPi = std::numbers::pi;

// ---------------------------------------------------------------- 16-bit rounding
TEST(Rounding, Bf16RoundToNearestEven) {
  auto bits = [](uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; };
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(bits(0x3f808000)), 0x3f80);  // halfway, even stays
  EXPECT_EQ(float_to_bf16(bits(0x3f818000)), 0x3f82);  // halfway, odd rounds up
  EXPECT_EQ(float_to_bf16(bits(0x3f808001)), 0x3f81);  // above halfway
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  for (uint32_t h = 0; h < 0x10000; ++h) {  // every finite bf16 round-trips
    const float f = bf16_to_float(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      EXPECT_EQ(float_to_bf16(f), h) << h;
    }
  }
}

TEST(Rounding, F16RoundToNearestEven) {
  EXPECT_EQ(float_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_f16(65504.0f), 0x7bff);            // largest finite
  EXPECT_EQ(float_to_f16(65520.0f), 0x7c00);            // rounds to inf
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie → even (0)
  EXPECT_EQ(float_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // tie → even (2)
  EXPECT_EQ(float_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie → even
  EXPECT_EQ(float_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie → even (up)
  EXPECT_EQ(float_to_f16(-0.0f), 0x8000);
  for (uint32_t h = 0; h < 0x10000; ++h) {  // every finite f16 round-trips
    const float f = f16_to_float(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      EXPECT_EQ(float_to_f16(f), h) << h;
    }
  }
  EXPECT_EQ(f16_to_float(0x3555), 0.333251953125f);
}

// ---------------------------------------------------------------- problem builder
struct Case {
  int tokens = 1, hq = 1, hk = 0, head_dim = 4, rotary_dim = 4;
  PairLayout layout = PairLayout::HalfSplit;
  DType dtype = DType::F32;
  bool use_table = true, in_place = true;
  int pad_head = 0, pad_token = 0;  // extra elements between heads / tokens
  int misalign = 0;                 // element offset of the data pointers
  int64_t max_pos = 1 << 20;
  double attention = 1.0;
  uint32_t seed = 1;
};

struct Buffers {
  Case c;
  std::vector<int64_t> positions;
  std::vector<double> inv;
  CosSinTable table;
  std::vector<uint8_t> q, k, q_out, k_out;  // raw storage
  int64_t head_stride() const { return c.head_dim + c.pad_head; }
  int64_t q_token_stride() const { return c.hq * head_stride() + c.pad_token; }
  int64_t k_token_stride() const { return c.hk * head_stride() + c.pad_token; }

  explicit Buffers(const Case& cs) : c(cs) {
    std::mt19937_64 rng(c.seed);
    // Table cases draw positions from a 4096-wide window at a random base up to
    // max_pos (a table spans a contiguous range); on-the-fly cases use [0, max_pos].
    const int64_t span = c.use_table ? std::min<int64_t>(c.max_pos, 4096) : c.max_pos;
    const int64_t base = std::uniform_int_distribution<int64_t>(0, c.max_pos - span)(rng);
    std::uniform_int_distribution<int64_t> pos(base, base + span);
    std::uniform_real_distribution<float> val(-2.0f, 2.0f);
    for (int t = 0; t < c.tokens; ++t) positions.push_back(pos(rng));
    RopeSpec s;
    s.type = RopeType::Yarn;
    s.rotary_dim = c.rotary_dim;
    s.head_dim = c.head_dim;
    s.theta = 10000;
    s.factor = 4;
    s.original_max_position = 4096;
    s.attention_factor = c.attention;
    auto f = compute_frequencies(s);
    inv = f.inv_freq;
    if (c.use_table) {
      // One table covering every position: span [min, max].
      int64_t lo = c.max_pos, hi = 0;
      for (auto p : positions) lo = std::min(lo, p), hi = std::max(hi, p);
      table = c.tokens ? build_cos_sin_table(f, lo, hi + 1) : build_cos_sin_table(f, 0, 0);
    }
    auto fill = [&](std::vector<uint8_t>& buf, int64_t elements) {
      std::vector<float> values(elements + c.misalign);
      for (auto& x : values) x = val(rng);
      buf.resize(values.size() * dtype_size(c.dtype));
      store_floats(c.dtype, values.data(), buf.data(), values.size());
    };
    fill(q, c.tokens * q_token_stride());
    fill(k, c.tokens * k_token_stride());
    fill(q_out, c.tokens * q_token_stride());
    fill(k_out, c.tokens * k_token_stride());
  }

  void* at(std::vector<uint8_t>& b) { return b.data() + c.misalign * dtype_size(c.dtype); }

  RotaryProblem problem() {
    RotaryProblem p;
    p.n_tokens = c.tokens;
    p.positions = positions.data();
    p.head_dim = c.head_dim;
    p.rotary_dim = c.rotary_dim;
    p.layout = c.layout;
    p.q = {at(q), c.dtype, c.hq, q_token_stride(), head_stride()};
    p.k = {c.hk ? at(k) : nullptr, c.dtype, c.hk, k_token_stride(), head_stride()};
    if (!c.in_place) {
      p.q_out = {at(q_out), c.dtype, c.hq, q_token_stride(), head_stride()};
      if (c.hk) p.k_out = {at(k_out), c.dtype, c.hk, k_token_stride(), head_stride()};
    }
    if (c.use_table) {
      p.angles.table = &table;
    } else {
      p.angles.inv_freq = &inv;
      p.angles.attention_factor = c.attention;
    }
    return p;
  }
};

float value(const std::vector<uint8_t>& b, DType t, int64_t i) { return load_float(t, b.data(), static_cast<size_t>(i)); }

// Compares the optimized and scalar outputs of one buffer. Tolerance: the two
// twins evaluate x0·c − x1·s with and without fused multiply-add, so f32 results
// may differ by a few ulps of (|x0|+|x1|)·A (A = attention factor, |c|,|s| ≤ A):
// 4·2^-24·(|x0|+|x1|)·A. Stored in 16 bits, that difference can move a value
// across a rounding boundary: add one 16-bit spacing of the result (2^-7
// relative for bf16, 2^-10 for f16, plus 2^-24 absolute for f16 subnormals).
void expect_close(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, const Case& c, const char* what) {
  const size_t n = got.size() / dtype_size(c.dtype);
  int reported = 0;
  for (size_t i = 0; i < n && reported < 5; ++i) {
    const float g = value(got, c.dtype, i), w = value(want, c.dtype, i);
    const double f32_bound = 4 * std::ldexp(1.0, -24) * (2 * 2.0 * 1.5) * c.attention;  // |x| ≤ 2 (×1.5 growth)
    double tol = f32_bound;
    if (c.dtype == DType::BF16) tol += std::ldexp(std::abs(w) + f32_bound, -7);
    if (c.dtype == DType::F16) tol += std::ldexp(std::abs(w) + f32_bound, -10) + std::ldexp(1.0, -24);
    if (!(std::abs(g - w) <= tol)) {
      ADD_FAILURE() << what << " element " << i << ": optimized " << g << " vs scalar " << w << " (tol " << tol << ")";
      ++reported;
    }
  }
}

void expect_twins_agree(const Case& c, int threads = 0) {
  Buffers opt(c), ref(c);
  apply_rotary(opt.problem(), threads);
  apply_rotary_scalar(ref.problem());
  SCOPED_TRACE(::testing::Message() << "tokens " << c.tokens << " hq " << c.hq << " hk " << c.hk << " head_dim " << c.head_dim
                                    << " rotary_dim " << c.rotary_dim << " " << to_string(c.layout) << " "
                                    << to_string(c.dtype) << (c.use_table ? " table" : " on-the-fly")
                                    << (c.in_place ? " in-place" : " out-of-place") << " misalign " << c.misalign);
  expect_close(opt.q, ref.q, c, "q");
  expect_close(opt.k, ref.k, c, "k");
  expect_close(opt.q_out, ref.q_out, c, "q_out");
  expect_close(opt.k_out, ref.k_out, c, "k_out");
}

// ---------------------------------------------------------------- the scalar twin by hand
TEST(Rotary, ScalarTwinByHand) {
  // d = 4, angles π/2 (pair 0) and π (pair 1) at position 1; x = [1, 2, 3, 4].
  std::vector<double> inv = {kPi / 2, kPi};
  std::vector<int64_t> pos = {1};
  for (PairLayout layout : {PairLayout::HalfSplit, PairLayout::Interleaved}) {
    float x[4] = {1, 2, 3, 4};
    RotaryProblem p;
    p.n_tokens = 1;
    p.positions = pos.data();
    p.head_dim = p.rotary_dim = 4;
    p.layout = layout;
    p.q = {x, DType::F32, 1, 4, 4};
    p.angles.inv_freq = &inv;
    apply_rotary_scalar(p);
    // half-split: pair 0 = (x0, x2) = (1, 3) by π/2 → (−3, 1); pair 1 = (x1, x3) = (2, 4) by π → (−2, −4).
    // interleaved: pair 0 = (x0, x1) = (1, 2) by π/2 → (−2, 1); pair 1 = (x2, x3) = (3, 4) by π → (−3, −4).
    const float want_half[4] = {-3, -2, 1, -4}, want_inter[4] = {-2, 1, -3, -4};
    const float* want = layout == PairLayout::HalfSplit ? want_half : want_inter;
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(x[i], want[i], 1e-6) << to_string(layout) << " channel " << i;
  }
}

TEST(Rotary, TableAndOnTheFlyAreIdentical) {
  for (PairLayout layout : {PairLayout::HalfSplit, PairLayout::Interleaved}) {
    Case c;
    c.tokens = 37, c.hq = 3, c.hk = 2, c.head_dim = c.rotary_dim = 64, c.layout = layout, c.attention = 1.3;
    Buffers a(c), b(c);  // same seed: same data and positions
    apply_rotary_scalar(a.problem());
    auto p = b.problem();
    p.angles = {nullptr, &b.inv, c.attention};
    apply_rotary_scalar(p);
    EXPECT_EQ(a.q, b.q);
    EXPECT_EQ(a.k, b.k);
  }
}

// ---------------------------------------------------------------- optimized vs scalar
TEST(Rotary, OptimizedMatchesScalarOnRandomShapes) {
  std::mt19937 rng(7);
  const int rotary_dims[] = {2, 4, 6, 8, 14, 16, 18, 30, 32, 64, 96, 128, 130, 256};
  int cases = 0;
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (PairLayout layout : {PairLayout::HalfSplit, PairLayout::Interleaved})
      for (int rd : rotary_dims) {
        Case c;
        c.dtype = dt;
        c.layout = layout;
        c.rotary_dim = rd;
        c.head_dim = rd + (rng() % 3 == 0 ? 2 * (rng() % 17) : 0);  // partial rotary a third of the time
        c.hq = 1 + rng() % 7;
        c.hk = rng() % 4;  // 0 = Q only
        c.tokens = std::vector<int>{1, 2, 3, 17, 64}[rng() % 5];
        c.use_table = rng() % 2;
        c.in_place = rng() % 2;
        c.pad_head = rng() % 2 ? 0 : 3;
        c.pad_token = rng() % 2 ? 0 : 5;
        c.misalign = rng() % 2;
        c.attention = rng() % 2 ? 1.0 : 1.2;
        c.seed = rng();
        expect_twins_agree(c);
        ++cases;
      }
  EXPECT_EQ(cases, 3 * 2 * 14);
}

TEST(Rotary, EdgeCases) {
  Case zero;
  zero.tokens = 0;
  expect_twins_agree(zero);
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    Case one;
    one.tokens = 1, one.hq = 32, one.hk = 8, one.head_dim = one.rotary_dim = 128, one.dtype = dt, one.misalign = 1;
    expect_twins_agree(one);
    one.layout = PairLayout::Interleaved;
    expect_twins_agree(one);
  }
  // Positions up to 2^20 and a large threaded batch (threads must not change results).
  Case big;
  big.tokens = 600, big.hq = 8, big.hk = 2, big.head_dim = big.rotary_dim = 128, big.max_pos = 1 << 20;
  expect_twins_agree(big, 2);
  Buffers one_thread(big), two_threads(big);
  apply_rotary(one_thread.problem(), 1);
  apply_rotary(two_threads.problem(), 2);
  EXPECT_EQ(one_thread.q, two_threads.q);
  EXPECT_EQ(one_thread.k, two_threads.k);
}

TEST(Rotary, TailAndPaddingAreUntouched) {
  for (bool in_place : {true, false}) {
    Case c;
    c.tokens = 5, c.hq = 3, c.hk = 1, c.head_dim = 40, c.rotary_dim = 16, c.pad_head = 2, c.pad_token = 3;
    c.in_place = in_place;
    Buffers b(c);
    const auto before_q = b.q;
    const auto before_out = b.q_out;
    apply_rotary(b.problem());
    for (int t = 0; t < c.tokens; ++t)
      for (int h = 0; h < c.hq; ++h)
        for (int i = c.rotary_dim; i < b.head_stride(); ++i) {
          const int64_t e = t * b.q_token_stride() + h * b.head_stride() + i;
          const bool tail = i < c.head_dim;
          // In place: tail and padding unchanged. Out of place: the tail is copied, padding untouched.
          if (in_place) {
            EXPECT_EQ(value(b.q, c.dtype, e), value(before_q, c.dtype, e));
          } else if (tail) {
            EXPECT_EQ(value(b.q_out, c.dtype, e), value(before_q, c.dtype, e));
          } else {
            EXPECT_EQ(value(b.q_out, c.dtype, e), value(before_out, c.dtype, e));
          }
        }
    if (!in_place) {
      EXPECT_EQ(b.q, before_q);  // the input is not modified
    }
  }
}

TEST(Rotary, FusedGqaEqualsSeparateCalls) {
  Case c;
  c.tokens = 9, c.hq = 32, c.hk = 8, c.head_dim = c.rotary_dim = 128;
  Buffers fused(c), sep(c);
  apply_rotary(fused.problem());
  auto pq = sep.problem();
  pq.k = {};
  apply_rotary(pq);
  auto pk = sep.problem();
  pk.q = {};
  apply_rotary(pk);
  EXPECT_EQ(fused.q, sep.q);
  EXPECT_EQ(fused.k, sep.k);
}

// ---------------------------------------------------------------- mathematical properties
TEST(Rotary, PreservesPairNormTimesAttentionFactor) {
  for (PairLayout layout : {PairLayout::HalfSplit, PairLayout::Interleaved}) {
    Case c;
    c.tokens = 16, c.hq = 4, c.head_dim = c.rotary_dim = 64, c.layout = layout, c.attention = 1.25, c.in_place = false;
    Buffers b(c);
    apply_rotary(b.problem());
    const int half = c.rotary_dim / 2;
    for (int64_t e0 = 0; e0 < c.tokens * b.q_token_stride(); e0 += c.head_dim)
      for (int j = 0; j < half; ++j) {
        const int i0 = layout == PairLayout::HalfSplit ? j : 2 * j, i1 = layout == PairLayout::HalfSplit ? j + half : 2 * j + 1;
        const double in = std::hypot(value(b.q, c.dtype, e0 + i0), value(b.q, c.dtype, e0 + i1));
        const double out = std::hypot(value(b.q_out, c.dtype, e0 + i0), value(b.q_out, c.dtype, e0 + i1));
        EXPECT_NEAR(out, 1.25 * in, 1e-5 * (1 + in));
      }
  }
}

// One head, f32, rotated at `pos`: returns the rotated copy.
std::vector<float> rotated(std::vector<float> x, int64_t pos, const std::vector<double>& inv, PairLayout layout) {
  RotaryProblem p;
  p.n_tokens = 1;
  p.positions = &pos;
  p.head_dim = p.rotary_dim = static_cast<int>(x.size());
  p.layout = layout;
  p.q = {x.data(), DType::F32, 1, p.head_dim, p.head_dim};
  p.angles.inv_freq = &inv;
  apply_rotary(p);
  return x;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

TEST(Rotary, ScoresDependOnlyOnRelativePosition) {
  RopeSpec s;
  s.rotary_dim = s.head_dim = 128;
  s.theta = 500000;
  const auto inv = compute_frequencies(s).inv_freq;
  std::mt19937 rng(3);
  std::normal_distribution<float> n;
  std::vector<float> q(128), k(128);
  for (auto& v : q) v = n(rng);
  for (auto& v : k) v = n(rng);
  for (PairLayout layout : {PairLayout::HalfSplit, PairLayout::Interleaved})
    for (int64_t delta : {0, 1, 7, 100, 4096}) {
      const double base = dot(rotated(q, 10 + delta, inv, layout), rotated(k, 10, inv, layout));
      for (int64_t shift : {1000, 65536, 1 << 20}) {
        const double moved = dot(rotated(q, 10 + delta + shift, inv, layout), rotated(k, 10 + shift, inv, layout));
        // cos/sin are float-rounded per position: ~1e-7 relative per term, ~128 terms of size ~1.
        EXPECT_NEAR(moved, base, 2e-4) << "delta " << delta << " shift " << shift;
      }
    }
}

TEST(Rotary, InterleavedOnMetaWeightsEqualsHalfSplitOnPermutedWeights) {
  // The converter trap: Meta/llama2.c rotate interleaved pairs; HF permutes the
  // rows of W_q/W_k so that half-split rotation gives the same attention scores.
  // HF's permute maps row (2j + h) of a head to row (h·d/2 + j).
  const int d = 64, dim = 32;
  std::mt19937 rng(11);
  std::normal_distribution<float> n;
  std::vector<float> wq(d * dim), wk(d * dim), x(dim), y(dim);
  for (auto* v : {&wq, &wk, &x, &y})
    for (auto& e : *v) e = n(rng);
  auto project = [&](const std::vector<float>& w, const std::vector<float>& in, bool permute) {
    std::vector<float> out(d);
    for (int r = 0; r < d; ++r) {
      const int src = permute ? (r < d / 2 ? 2 * r : 2 * (r - d / 2) + 1) : r;  // HF row r ← Meta row src
      double s = 0;
      for (int c = 0; c < dim; ++c) s += w[src * dim + c] * in[c];
      out[r] = static_cast<float>(s);
    }
    return out;
  };
  RopeSpec s;
  s.rotary_dim = s.head_dim = d;
  const auto inv = compute_frequencies(s).inv_freq;
  const int64_t m = 37, k_pos = 5;
  const auto q_meta = rotated(project(wq, x, false), m, inv, PairLayout::Interleaved);
  const auto k_meta = rotated(project(wk, y, false), k_pos, inv, PairLayout::Interleaved);
  const auto q_hf = rotated(project(wq, x, true), m, inv, PairLayout::HalfSplit);
  const auto k_hf = rotated(project(wk, y, true), k_pos, inv, PairLayout::HalfSplit);
  EXPECT_NEAR(dot(q_meta, k_meta), dot(q_hf, k_hf), 1e-4);
  // The trap itself: half-split rotation on unpermuted Meta weights scores differently.
  const auto q_wrong = rotated(project(wq, x, false), m, inv, PairLayout::HalfSplit);
  const auto k_wrong = rotated(project(wk, y, false), k_pos, inv, PairLayout::HalfSplit);
  EXPECT_GT(std::abs(dot(q_wrong, k_wrong) - dot(q_meta, k_meta)), 0.1);
}

TEST(Rotary, RejectsMalformedProblems) {
  Case c;
  c.tokens = 3, c.hq = 2, c.head_dim = c.rotary_dim = 8;
  Buffers b(c);
  auto p = b.problem();
  p.rotary_dim = 7;
  EXPECT_THROW(apply_rotary(p), std::invalid_argument);
  p = b.problem();
  p.rotary_dim = 10;  // > head_dim
  EXPECT_THROW(apply_rotary(p), std::invalid_argument);
  p = b.problem();
  std::vector<int64_t> far = {0, 1, (1 << 20) + 5};  // outside the table
  p.positions = far.data();
  EXPECT_THROW(apply_rotary(p), std::invalid_argument);
  EXPECT_THROW(apply_rotary_scalar(p), std::invalid_argument);
  p = b.problem();
  p.q.head_stride = 4;
  EXPECT_THROW(apply_rotary(p), std::invalid_argument);
  p = b.problem();
  p.angles.inv_freq = &b.inv;  // both angle sources
  EXPECT_THROW(apply_rotary(p), std::invalid_argument);
  p = b.problem();
  p.positions = nullptr;
  EXPECT_THROW(apply_rotary(p), std::invalid_argument);
}

TEST(Rotary, ReportsItsSimdTarget) { EXPECT_FALSE(rotary_simd_target().empty()); }

// Runtime dispatch runs only the best target of this CPU; every other compiled
// target (AVX2, SSE4, …, scalar) and the portable bf16 path that CPUs with
// AVX512_BF16 skip must match the scalar twin too.
TEST(Rotary, EveryCompiledTargetMatchesScalar) {
  std::mt19937 rng(11);
  std::set<std::string> seen;
  for (const int64_t target : hwy::SupportedAndGeneratedTargets())
    for (const bool native_bf16 : {true, false}) {
      hwy::SetSupportedTargetsForTest(target);
      detail::set_native_bf16_enabled(native_bf16);
      seen.insert(rotary_simd_target());
      SCOPED_TRACE(rotary_simd_target());
      for (DType dt : {DType::F32, DType::BF16, DType::F16})
        for (PairLayout layout : {PairLayout::HalfSplit, PairLayout::Interleaved})
          for (int rd : {6, 64, 128, 130}) {
            Case c;
            c.dtype = dt, c.layout = layout, c.rotary_dim = rd, c.head_dim = rd + 2 * (rng() % 3);
            c.hq = 1 + rng() % 20, c.hk = rng() % 4, c.tokens = 1 + rng() % 9;
            c.use_table = rng() % 2, c.in_place = rng() % 2, c.misalign = rng() % 2, c.attention = 1.2;
            c.seed = rng();
            expect_twins_agree(c);
          }
    }
  hwy::SetSupportedTargetsForTest(0);  // back to what the CPU supports
  detail::set_native_bf16_enabled(true);
  EXPECT_GE(seen.size(), 2u) << "expected at least a SIMD target and the scalar fallback";
}

}  // namespace
}  // namespace ropescale
