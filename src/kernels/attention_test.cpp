#include "ropescale/kernels/attention.h"

#include <cmath>
#include <iterator>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "hwy/targets.h"

#include "ropescale/kernels/dtype.h"

namespace ropescale {
namespace {

TEST(Attention, TwoKeysByHand) {
  // One head, hd = 1, q = 1, keys k0 = 0, k1 = ln 3 (scale 1): weights ∝ (1, 3) → (¼, ¾).
  // v0 = 4, v1 = 8 → out = 1 + 6 = 7 for the second query (it sees both keys);
  // the first query sees only k0 → out = 4.
  const float q[2] = {1, 1}, k[2] = {0, std::log(3.0f)}, v[2] = {4, 8};
  float out[2] = {0, 0};
  AttentionProblem p{2, 1, 1, 1, 0, q, k, v, KvType::F32, KvType::F32, 1.0f, out};
  attention_scalar(p);
  EXPECT_NEAR(out[0], 4.0f, 1e-6);
  EXPECT_NEAR(out[1], 7.0f, 1e-5);
  float out2[2];
  p.out = out2;
  attention(p);
  EXPECT_NEAR(out2[0], 4.0f, 1e-6);
  EXPECT_NEAR(out2[1], 7.0f, 1e-5);
}

// The optimized kernel against the double-precision twin on one shape, with
// 1 and 2 threads (2 threads exercise the key splits of short problems).
// key_type: F32 for keys rotated at read beside stored values of `type`; by default `type`.
void compare(int n_queries, int H, int KV, int hd, int64_t keys_before, uint32_t seed, KvType type = KvType::F32,
             std::optional<KvType> key_type = std::nullopt) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 1);
  const int64_t keys = keys_before + n_queries;
  std::vector<float> q(size_t(n_queries) * H * hd), k(size_t(keys) * KV * hd), v(k.size()), a(q.size()), b(q.size());
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = n(rng);
  // Edge rows in quantized caches: an all-zero key/value row (scale 0) and one 1000× larger.
  if (is_quantized(type) && keys > 2) {
    std::fill(k.begin(), k.begin() + KV * hd, 0.0f);
    std::fill(v.begin(), v.begin() + KV * hd, 0.0f);
    for (int c = 0; c < KV * hd; ++c) v[size_t(KV) * hd + c] *= 1000.0f;
  }
  const int64_t rows = keys * KV;
  const KvType kt = key_type.value_or(type);
  std::vector<std::byte> kc(size_t(rows) * kv_row_bytes(kt, hd)), vc(size_t(rows) * kv_row_bytes(type, hd));
  kv_store_rows(kt, k.data(), kc.data(), rows, hd);
  kv_store_rows(type, v.data(), vc.data(), rows, hd);
  AttentionProblem p{n_queries, H, KV, hd, keys_before, q.data(), kc.data(), vc.data(), kt, type, 1.0f / std::sqrt(float(hd)), a.data()};
  attention_scalar(p);  // the twin reads the same stored values
  for (int threads : {1, 2}) {
    std::fill(b.begin(), b.end(), std::nanf(""));
    p.out = b.data();
    attention(p, threads);
    // Outputs are convex combinations of N(0,1) values (one row ×1000 in quantized
    // caches); float accumulation over up to 17K keys vs the double twin: 1e-4 relative.
    const double tol = is_quantized(type) ? 1e-4 * 1000 : 1e-4;
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_NEAR(b[i], a[i], tol) << to_string(type) << " element " << i << " of " << n_queries << "q H" << H << " KV" << KV << " hd" << hd
                                   << " keys " << keys << " threads " << threads;
  }
}

TEST(Attention, TiledMatchesScalarTwin) {
  compare(1, 1, 1, 8, 0, 1);
  compare(7, 8, 4, 8, 100, 2);        // GQA ×2
  compare(33, 6, 2, 64, 63, 3);       // GQA ×3, tile boundary
  compare(5, 4, 1, 128, 1000, 4);     // MQA
  compare(3, 4, 2, 16, 17000, 5);     // positions beyond 16K
}

TEST(Attention, WideAndNarrowBlocksOnRandomShapes) {
  // head_dim 8 … 256 (and odd ones), GQA 1 … 8, chunks from decode (1 query:
  // narrow blocks, keys split across threads) to prefill (wide blocks), key
  // counts on and across the 64-key tile edges, positions past 16K.
  std::mt19937 rng(20261202);
  const int dims[] = {8, 16, 32, 64, 80, 128, 256, 12, 5};
  const int ratios[] = {1, 2, 3, 4, 8};
  const int queries[] = {1, 2, 3, 17, 64, 65, 130};
  const int64_t before[] = {0, 1, 63, 64, 127, 500, 16500};
  for (int trial = 0; trial < 40; ++trial) {
    const int hd = dims[rng() % std::size(dims)], ratio = ratios[rng() % std::size(ratios)];
    const int KV = 1 + int(rng() % 2), Q = queries[rng() % std::size(queries)];
    int64_t b = before[rng() % std::size(before)];
    if (int64_t(Q) * ratio * KV * hd * (b + Q) > (int64_t{1} << 27)) b = 63;  // keep the double twin quick
    compare(Q, KV * ratio, KV, hd, b, 100 + trial, trial % 3 == 0 ? KvType::F16 : KvType::F32);
  }
}

TEST(Attention, QuantizedCachesMatchTwin) {
  // q8_0 / q4_0 blocks read in place (decode: narrow blocks, keys split across threads)
  // or dequantized a tile at a time (prefill: wide blocks), against the twin over the
  // same blocks dequantized by kv_load_rows; head dims of 1 … 8 blocks.
  std::mt19937 rng(20261203);
  const int dims[] = {32, 64, 96, 128, 256};
  const int ratios[] = {1, 2, 4, 8};
  const int queries[] = {1, 2, 5, 17, 64, 130};
  const int64_t before[] = {0, 1, 63, 64, 127, 700};
  for (int trial = 0; trial < 32; ++trial) {
    const int hd = dims[rng() % std::size(dims)], ratio = ratios[rng() % std::size(ratios)];
    const int KV = 1 + int(rng() % 2), Q = queries[rng() % std::size(queries)];
    int64_t b = before[rng() % std::size(before)];
    if (int64_t(Q) * ratio * KV * hd * (b + Q) > (int64_t{1} << 26)) b = 63;
    compare(Q, KV * ratio, KV, hd, b, 300 + trial, trial % 2 ? KvType::Q8_0 : KvType::Q4_0);
  }
  compare(1, 32, 8, 128, 9000, 7, KvType::Q8_0);  // a Llama-3-8B head layout decoding at 9K
}

TEST(Attention, QuantizedKeysScoreTheRoundedQuery) {
  // With q8_0 keys the query is rounded to q8_0 first (ggml's CPU attention): max |q| = 127 gives
  // d = 1, so q → (127, 0, 3, −2, 0 …): 0.4 rounds to 0, 2.6 to 3, −1.5 away from zero to −2.
  // Keys of scale 1: k0 = (10, 100, 20, 30, 0 … 0, 127), k1 = (10, −100, 20, 30, 0 … 0, 127).
  // Rounded, both score 1270 (× scale 0.01): equal weights, lse = 12.7 + ln(#keys).
  // Unrounded they would score 13.17 and 12.37 — weights 0.69 / 0.31.
  constexpr int hd = 32;
  std::vector<float> qv(hd, 0.0f), k0(hd, 0.0f), k1(hd, 0.0f);
  qv[0] = 127, qv[1] = 0.4f, qv[2] = 2.6f, qv[3] = -1.5f;
  k0[0] = 10, k0[1] = 100, k0[2] = 20, k0[3] = 30, k0[hd - 1] = 127;
  k1 = k0;
  k1[1] = -100;
  for (int n_queries : {1, 20}) {  // decode (narrow blocks) and prefill-shaped (wide blocks)
    const int64_t keys = 1 + n_queries;
    std::vector<float> q, k(k0), v(size_t(keys) * hd);
    for (int t = 0; t < n_queries; ++t) q.insert(q.end(), qv.begin(), qv.end());
    for (int64_t i = 1; i < keys; ++i) k.insert(k.end(), k1.begin(), k1.end());  // key 0, then copies of k1
    for (int64_t i = 0; i < keys; ++i) v[size_t(i) * hd] = i == 0 ? 1.0f : -1.0f;
    std::vector<BlockQ8_0> kc(size_t(keys) * hd / kQuantBlock), vc(kc.size());
    kv_store_rows(KvType::Q8_0, k.data(), kc.data(), keys, hd);
    kv_store_rows(KvType::Q8_0, v.data(), vc.data(), keys, hd);
    for (int variant = 0; variant < 3; ++variant) {  // the twin, the kernel on 1 and on 2 threads
      std::vector<float> out(q.size()), lse(n_queries);
      AttentionProblem p{n_queries, 1, 1, hd, 1, q.data(), kc.data(), vc.data(), KvType::Q8_0, KvType::Q8_0, 0.01f, out.data()};
      p.lse = lse.data();
      if (variant == 0) attention_scalar(p);
      else attention(p, variant);
      for (int t = 0; t < n_queries; ++t) {
        const double n_keys = 2 + t;  // key 0 and t + 1 copies of k1, all scoring 12.7
        EXPECT_NEAR(lse[t], 12.7 + std::log(n_keys), 1e-4) << "variant " << variant << " query " << t << " of " << n_queries;
        EXPECT_NEAR(out[size_t(t) * hd], (1.0 - (n_keys - 1)) / n_keys, 1e-3) << "variant " << variant << " query " << t;
      }
    }
  }
}

TEST(Attention, QuantizedDotsAtTheExtremes) {
  // Every element of every key and query at its block's largest magnitude, random signs: q8_0 stores
  // ±127 throughout (the byte dot products' largest pair, 2 · 127², must not saturate 16 bits) and
  // q4_0 the nibbles 0 and 15 (−8 and 7). Each score is d_q · d_k · Σ ±127 · k_i, so the kernel and
  // the twin must agree to float rounding, not to the loose bound of random caches.
  std::mt19937 rng(20261207);
  for (KvType type : {KvType::Q8_0, KvType::Q4_0})
    for (int hd : {32, 128})
      for (int n_queries : {1, 2, 40}) {
        const int H = 4, KV = 2;
        const int64_t keys_before = 203, keys = keys_before + n_queries;
        const auto sign = [&] { return rng() % 2 ? 1.0f : -1.0f; };
        std::vector<float> q(size_t(n_queries) * H * hd), k(size_t(keys) * KV * hd), v(k.size()), a(q.size()), b(q.size());
        for (auto& e : q) e = 0.5f * sign();
        for (auto& e : k) e = 0.5f * sign();  // scores ±√hd · 0.25 · … : well inside exp's range
        for (auto& e : v) e = sign();
        std::vector<std::byte> kc(size_t(keys) * KV * kv_row_bytes(type, hd)), vc(kc.size());
        kv_store_rows(type, k.data(), kc.data(), keys * KV, hd);
        kv_store_rows(type, v.data(), vc.data(), keys * KV, hd);
        AttentionProblem p{n_queries, H, KV, hd, keys_before, q.data(), kc.data(), vc.data(), type, type, 1.0f / std::sqrt(float(hd)), a.data()};
        attention_scalar(p);
        p.out = b.data();
        attention(p, 1);
        for (size_t i = 0; i < a.size(); ++i)
          ASSERT_NEAR(b[i], a[i], 1e-5) << to_string(type) << " hd " << hd << " queries " << n_queries << " element " << i;
      }
}

TEST(Attention, F32KeysBesideStoredValues) {
  // Keys rotated at read are f32 whatever the cache stores; values stay in the cache's type.
  for (KvType values : {KvType::F16, KvType::Q8_0, KvType::Q4_0})
    for (int queries : {1, 3, 64}) compare(queries, 4, 2, 64, 200, 11 + queries, values, KvType::F32);
  float x[64] = {};
  AttentionProblem p{1, 1, 1, 32, 0, x, x, x, KvType::F16, KvType::Q8_0, 1.0f, x};  // f16 keys, q8_0 values
  EXPECT_THROW(attention(p), std::invalid_argument);
}

TEST(Attention, LogSumExpMergesDisjointKeys) {
  // Attention of one query over keys [0, 300) = the merge of [0, 120) and [120, 300) through
  // their log-sum-exps; each lse against the twin's.
  std::mt19937 rng(13);
  std::normal_distribution<float> n(0, 1);
  const int H = 4, KV = 2, hd = 32, keys = 300, split = 120;
  std::vector<float> q(size_t(H) * hd), k(size_t(keys) * KV * hd), v(k.size());
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = n(rng);
  std::vector<float> whole(q.size()), a(q.size()), b(q.size()), merged(q.size()), lse_a(H), lse_b(H), lse_twin(H);
  AttentionProblem p{1, H, KV, hd, keys - 1, q.data(), k.data(), v.data(), KvType::F32, KvType::F32, 0.2f, whole.data()};
  attention(p, 2);
  AttentionProblem pa = p, pb = p;
  pa.keys_before = split - 1, pa.out = a.data(), pa.lse = lse_a.data();  // keys 0 … 119
  pb.keys_before = keys - split - 1, pb.out = b.data(), pb.lse = lse_b.data();  // keys 120 … 299
  pb.k = k.data() + size_t(split) * KV * hd, pb.v = v.data() + size_t(split) * KV * hd;
  for (int threads : {1, 2}) {
    attention(pa, threads);
    attention(pb, threads);
    merge_attention(a.data(), lse_a.data(), b.data(), lse_b.data(), merged.data(), H, hd);
    for (size_t i = 0; i < whole.size(); ++i) ASSERT_NEAR(merged[i], whole[i], 1e-5) << i;
    AttentionProblem twin = pa;
    twin.lse = lse_twin.data();
    std::vector<float> o(q.size());
    twin.out = o.data();
    attention_scalar(twin);
    for (int h = 0; h < H; ++h) ASSERT_NEAR(lse_a[h], lse_twin[h], 1e-4) << h;
  }
}

TEST(Attention, ExtremeScoresStayFinite) {
  // Scores of ±640 (exp overflows float without the running max) and one key
  // that dominates: the result must be that key's value.
  const int hd = 8, keys = 200;
  std::vector<float> q(hd, 0.0f), k(size_t(keys) * hd, 0.0f), v(size_t(keys) * hd), out(hd);
  q[0] = 1;
  for (int i = 0; i < keys; ++i) {
    k[size_t(i) * hd] = i == 150 ? 640.0f : (i % 2 ? -640.0f : 480.0f);
    for (int c = 0; c < hd; ++c) v[size_t(i) * hd + c] = float(i);
  }
  AttentionProblem p{1, 1, 1, hd, keys - 1, q.data(), k.data(), v.data(), KvType::F32, KvType::F32, 1.0f, out.data()};
  for (int threads : {1, 2}) {
    attention(p, threads);
    for (int c = 0; c < hd; ++c) EXPECT_NEAR(out[c], 150.0f, 1e-3) << threads;
  }
}

TEST(Attention, F16CacheMatchesTwin) {
  std::mt19937 rng(9);
  std::normal_distribution<float> n(0, 1);
  const int Q = 5, H = 4, KV = 2, hd = 32;
  const int64_t before = 300, keys = before + Q;
  std::vector<float> q(size_t(Q) * H * hd), kf(size_t(keys) * KV * hd), vf(kf.size()), a(q.size()), b(q.size());
  for (auto* x : {&q, &kf, &vf})
    for (auto& e : *x) e = n(rng);
  std::vector<uint16_t> k16(kf.size()), v16(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) k16[i] = float_to_f16(kf[i]), v16[i] = float_to_f16(vf[i]);
  AttentionProblem p{Q, H, KV, hd, before, q.data(), k16.data(), v16.data(), KvType::F16, KvType::F16, 0.2f, a.data()};
  attention_scalar(p);  // the twin reads the same f16 values
  p.out = b.data();
  attention(p, 2);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(b[i], a[i], 1e-4) << i;
}

// Key weights (H2O's accumulated attention): the by-hand case, each query's weights summing to 1,
// and the optimized pass against the twin's normalized probabilities on shapes and storage types.
TEST(Attention, KeyWeightsByHand) {
  // As TwoKeysByHand: query 0 gives k0 weight 1; query 1 gives k0 ¼ and k1 ¾. Weights add to what is there.
  const float q[2] = {1, 1}, k[2] = {0, std::log(3.0f)}, v[2] = {4, 8};
  for (bool optimized : {false, true}) {
    float out[2], w[2] = {10, 20};
    AttentionProblem p{2, 1, 1, 1, 0, q, k, v, KvType::F32, KvType::F32, 1.0f, out};
    p.key_weight = w;
    optimized ? attention(p) : attention_scalar(p);
    EXPECT_NEAR(w[0], 10 + 1.25f, 1e-5) << optimized;
    EXPECT_NEAR(w[1], 20 + 0.75f, 1e-5) << optimized;
    EXPECT_NEAR(out[1], 7.0f, 1e-5) << optimized;  // the attention itself unchanged
  }
}

void compare_key_weights(int n_queries, int H, int KV, int hd, int64_t keys_before, uint32_t seed, KvType type) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 1.5f);
  const int64_t keys = keys_before + n_queries, rows = keys * KV;
  std::vector<float> q(size_t(n_queries) * H * hd), k(size_t(rows) * hd), v(k.size()), out(q.size());
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = n(rng);
  std::vector<std::byte> kc(size_t(rows) * kv_row_bytes(type, hd)), vc(kc.size());
  kv_store_rows(type, k.data(), kc.data(), rows, hd);
  kv_store_rows(type, v.data(), vc.data(), rows, hd);
  std::vector<float> twin(keys, 0.0f);
  AttentionProblem p{n_queries, H, KV, hd, keys_before, q.data(), kc.data(), vc.data(), type, type, 1.0f / std::sqrt(float(hd)), out.data()};
  p.key_weight = twin.data();
  attention_scalar(p);
  double total = 0;
  for (float w : twin) total += w;
  ASSERT_NEAR(total, double(n_queries) * H, 1e-3 * n_queries * H);  // every query head's weights sum to 1
  for (int threads : {1, 2}) {
    std::vector<float> got(keys, 0.0f);
    p.key_weight = got.data();
    attention(p, threads);
    for (int64_t i = 0; i < keys; ++i)
      ASSERT_NEAR(got[i], twin[i], 2e-5 * (1 + twin[i]) * n_queries)
          << to_string(type) << " key " << i << " of " << keys << ", " << n_queries << "q H" << H << " KV" << KV << " hd" << hd
          << " threads " << threads;
  }
}

// Up to 4 queries (decode) the weights come from the numerators the kernel recorded; more (prefill
// chunks) recompute the scores. Both paths are checked here, on one and on two threads.
TEST(Attention, KeyWeightsMatchTwin) {
  compare_key_weights(1, 1, 1, 8, 0, 11, KvType::F32);
  compare_key_weights(1, 8, 2, 64, 700, 12, KvType::F32);     // decode, GQA ×4, several tiles
  compare_key_weights(37, 4, 4, 12, 90, 13, KvType::F32);     // head_dim not a multiple of 8
  compare_key_weights(130, 6, 3, 32, 5, 14, KvType::F16);     // prefill across the diagonal
  compare_key_weights(3, 4, 2, 32, 3000, 15, KvType::Q8_0);  // keys split over tasks
  compare_key_weights(64, 2, 1, 64, 64, 16, KvType::Q4_0);
}

// Runtime dispatch runs only this CPU's best target; every other compiled one (SSE4, SSSE3, the
// scalar fallback …) must match the twin too. Their vector widths move the line between narrow and
// wide blocks: with 4 lanes a decode block of 8 rows per KV head takes the wide path head by head.
TEST(Attention, EveryCompiledTargetMatchesTwin) {
  std::set<std::string> seen;
  for (const int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    seen.insert(attention_simd_target());
    SCOPED_TRACE(attention_simd_target());
    compare(1, 8, 2, 32, 300, 41);                   // decode, GQA ×4, all KV heads in one block
    compare(1, 32, 4, 64, 200, 42, KvType::F16);     // 8 rows per KV head
    compare(2, 4, 2, 32, 130, 43, KvType::Q8_0);     // two queries
    compare(1, 6, 3, 64, 500, 44, KvType::Q4_0);     // three KV heads, odd rows per head
    compare(3, 4, 2, 64, 70, 45, KvType::Q8_0, KvType::F32);  // f32 keys beside quantized values
    compare(40, 4, 2, 32, 20, 46, KvType::Q8_0);     // prefill-shaped (wide)
    compare(5, 4, 4, 12, 9, 47);                     // head_dim not a multiple of 8
    compare_key_weights(2, 4, 2, 32, 300, 48, KvType::Q8_0);
  }
  hwy::SetSupportedTargetsForTest(0);  // back to what the CPU supports
  EXPECT_GE(seen.size(), 2u) << "expected at least a SIMD target and the scalar fallback";
}

TEST(Attention, RejectsBadShapes) {
  AttentionProblem p;
  p.n_queries = 1, p.n_heads = 3, p.n_kv_heads = 2, p.head_dim = 4;
  EXPECT_THROW(attention(p), std::invalid_argument);
  float x[8] = {};
  AttentionProblem q{1, 1, 1, 8, 0, x, x, x, KvType::Q8_0, KvType::Q8_0, 1.0f, x};  // q8_0 rows of 8: not a block
  EXPECT_THROW(attention(q), std::invalid_argument);
  EXPECT_THROW(attention_scalar(q), std::invalid_argument);
}

}  // namespace
}  // namespace ropescale
