// stories260K golden values (../shared/models/SOURCES.md, from an independent
// fp64 numpy forward pass) and runtime properties.
#include "ropescale/model/session.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "ropescale/config/mapped_file.h"
#include "ropescale/model/tokenizer.h"
#include "default_model.h"
#include "tiny_model.h"
#include "test_support.h"

namespace ropescale {
namespace {

std::filesystem::path stories() { return test::shared_dir() / "models/stories260K"; }

class Stories260K : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(stories() / "stories260K.bin")) return;
    model_ = new LlamaModel(load_model((stories() / "stories260K.bin").string()));
    tok_ = new Llama2cTokenizer(Llama2cTokenizer::load((stories() / "tok512.bin").string(), 512));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tok_;
    model_ = nullptr;
    tok_ = nullptr;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "SKIPPED LOUDLY: " << stories() << " is absent (../shared not beside the checkout)";
  }
  static SessionOptions options(const std::string& rope_json = "", int64_t ctx = 512, KeyRotation kr = KeyRotation::AtWrite,
                                int chunk = 256) {
    SessionOptions o;
    o.max_context = ctx;
    o.rope = rope_spec_for_model(*model_, rope_json);
    o.key_rotation = kr;
    o.chunk = chunk;
    return o;
  }
  static LlamaModel* model_;
  static Llama2cTokenizer* tok_;
};
LlamaModel* Stories260K::model_ = nullptr;
Llama2cTokenizer* Stories260K::tok_ = nullptr;

TEST_F(Stories260K, EncodesOnceUponATime) {
  EXPECT_EQ(tok_->encode("Once upon a time", true, false), (std::vector<int>{1, 403, 407, 261, 378}));
}

TEST_F(Stories260K, TopFiveLogitsAfterBos) {
  InferenceSession s(*model_, options());
  const int bos = Llama2cTokenizer::kBos;
  const auto logits = s.forward(std::span<const int>(&bos, 1));
  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + 5, order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  const int want_ids[] = {403, 385, 410, 317, 407};
  const double want[] = {17.0235, 15.4062, 13.1083, 12.7692, 12.4181};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(order[i], want_ids[i]);
    EXPECT_NEAR(logits[order[i]], want[i], 1e-3);  // golden values are rounded to 4 decimals
  }
  EXPECT_EQ(tok_->decode(bos, 403), "Once");
}

TEST_F(Stories260K, GreedySequenceFromBos) {
  const std::vector<int> want = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395,
                                 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265,
                                 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352};
  InferenceSession s(*model_, options());
  std::vector<int> got = {Llama2cTokenizer::kBos};
  while (got.size() < want.size()) {
    const auto logits = s.forward(std::span<const int>(&got.back(), 1));
    got.push_back(static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  }
  EXPECT_EQ(got, want);
  std::string text;
  for (size_t i = 1; i < got.size(); ++i) text += tok_->decode(got[i - 1], got[i]);
  EXPECT_EQ(text.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << text;
}

std::vector<int> story_tokens(const Llama2cTokenizer& tok, size_t n) {
  std::ifstream in(test::shared_dir() / "data/tinystories_valid_head.txt");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto ids = tok.encode(text.substr(0, n * 4), true, false);
  ids.resize(std::min(ids.size(), n));
  return ids;
}

TEST_F(Stories260K, ChunkedPrefillEqualsOneTokenAtATime) {
  const auto ids = story_tokens(*tok_, 300);
  InferenceSession whole(*model_, options("", 512, KeyRotation::AtWrite, 128));
  const auto a = whole.forward(ids, true);
  InferenceSession steps(*model_, options("", 512, KeyRotation::AtWrite, 1));
  const auto b = steps.forward(ids, true);
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  EXPECT_LT(worst, 2e-3);
}

TEST_F(Stories260K, RewindScoresAnotherContinuation) {
  const auto ids = story_tokens(*tok_, 200);
  const std::vector<int> prompt(ids.begin(), ids.begin() + 150), a(ids.begin() + 150, ids.begin() + 160);
  std::vector<int> b(a);
  std::reverse(b.begin(), b.end());
  InferenceSession s(*model_, options("{\"rope_type\":\"yarn\",\"factor\":2}", 512));
  s.forward(prompt);
  const auto first = s.forward(a, true);
  s.rewind(150);
  s.forward(b);  // overwrite the cache rows of `a`
  s.rewind(150);
  const auto again = s.forward(a, true);
  EXPECT_EQ(first, again);  // bit-identical: the same computation on the same cache
  EXPECT_EQ(s.position(), 160);
  EXPECT_THROW(s.rewind(161), std::out_of_range);
}

TEST_F(Stories260K, KeyRotationSemantics) {
  const auto ids = story_tokens(*tok_, 1100);
  auto last_logits = [&](const std::string& rope, KeyRotation kr) {
    InferenceSession s(*model_, options(rope, 2048, kr, 256));
    return s.forward(ids);
  };
  auto max_diff = [](const std::vector<float>& a, const std::vector<float>& b) {
    double w = 0;
    for (size_t i = 0; i < a.size(); ++i) w = std::max(w, double(std::abs(a[i] - b[i])));
    return w;
  };
  // Static methods: rotating at write or at read is the same computation.
  const std::string yarn = R"({"rope_type":"yarn","factor":4})";
  EXPECT_LT(max_diff(last_logits(yarn, KeyRotation::AtWrite), last_logits(yarn, KeyRotation::AtRead)), 1e-3);
  // Dynamic NTK past the trained length: the base changes chunk by chunk, so
  // keys rotated at write time (HF/vLLM) disagree with exact re-rotation.
  const std::string dyn = R"({"rope_type":"dynamic","factor":4})";
  EXPECT_GT(max_diff(last_logits(dyn, KeyRotation::AtWrite), last_logits(dyn, KeyRotation::AtRead)), 1e-2);
  // Within the trained length dynamic NTK is plain RoPE: both agree with it.
  const auto short_ids = std::vector<int>(ids.begin(), ids.begin() + 400);
  InferenceSession plain(*model_, options("", 2048));
  InferenceSession dyn_read(*model_, options(dyn, 2048, KeyRotation::AtRead));
  EXPECT_LT(max_diff(plain.forward(short_ids), dyn_read.forward(short_ids)), 1e-4);
}

TEST_F(Stories260K, BatchedDecodeMatchesEachSessionAlone) {
  // Four sequences at different lengths (two past the trained 512) with different settings, one of
  // them rotating keys at read and one with an f16 cache: a batched decode step gives each session
  // what its own forward() gives.
  const auto ids = story_tokens(*tok_, 900);
  struct Case {
    const char* rope;
    int prompt;
    KeyRotation kr;
    KvType kv;
  };
  const Case cases[] = {{"", 40, KeyRotation::AtWrite, KvType::F32},
                        {R"({"rope_type":"yarn","factor":4})", 700, KeyRotation::AtWrite, KvType::F32},
                        {R"({"rope_type":"linear","factor":2})", 300, KeyRotation::AtRead, KvType::F32},
                        {R"({"rope_type":"dynamic","factor":2})", 850, KeyRotation::AtWrite, KvType::F16}};
  std::vector<std::unique_ptr<InferenceSession>> batched, alone;
  for (const auto& c : cases) {
    auto o = options(c.rope, 1024, c.kr);
    o.kv_cache = c.kv;
    for (auto* v : {&batched, &alone}) {
      v->push_back(std::make_unique<InferenceSession>(*model_, o));
      v->back()->forward(std::span<const int>(ids.data(), c.prompt));
    }
  }
  std::vector<InferenceSession*> ptrs;
  for (auto& s : batched) ptrs.push_back(s.get());
  const int V = model_->hp.vocab_size;
  for (int step = 0; step < 3; ++step) {
    std::vector<int> next;
    for (const auto& c : cases) next.push_back(ids[c.prompt + step]);
    const auto together = InferenceSession::forward_batch(ptrs, next);
    ASSERT_EQ(together.size(), size_t(4) * V);
    for (size_t b = 0; b < 4; ++b) {
      const auto own = alone[b]->forward(std::span<const int>(&next[b], 1));
      double worst = 0;
      for (int v = 0; v < V; ++v) worst = std::max(worst, double(std::abs(together[b * V + v] - own[v])));
      EXPECT_LT(worst, 1e-4) << "session " << b << " step " << step;
      EXPECT_EQ(batched[b]->position(), alone[b]->position());
    }
  }
  // One session: forward() itself, bit for bit.
  InferenceSession a(*model_, options()), b(*model_, options());
  a.forward(std::span<const int>(ids.data(), 20));
  b.forward(std::span<const int>(ids.data(), 20));
  const int t = ids[20];
  InferenceSession* one[] = {&a};
  EXPECT_EQ(InferenceSession::forward_batch(one, std::span<const int>(&t, 1)), b.forward(std::span<const int>(&t, 1)));
  // Mismatched inputs are refused.
  const int two[] = {1, 2};
  EXPECT_THROW(InferenceSession::forward_batch(one, two), std::invalid_argument);
}

TEST_F(Stories260K, EveryMethodRunsAt8xWithoutNaN) {
  // 8× the trained 512 tokens.
  const auto ids = story_tokens(*tok_, 4096);
  ASSERT_EQ(ids.size(), 4096u);
  for (const char* rope : {"", R"({"rope_type":"linear","factor":8})", R"({"rope_type":"ntk","factor":8})",
                           R"({"rope_type":"dynamic","factor":8})", R"({"rope_type":"yarn","factor":8})",
                           R"({"rope_type":"dynamic_yarn"})", R"({"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4})",
                           R"({"rope_type":"longrope","short_factor":[1,1,1,1],"long_factor":[1,2,4,8],"factor":8})"}) {
    InferenceSession s(*model_, options(rope, 4096, KeyRotation::AtWrite, 512));
    const auto logits = s.forward(ids);
    EXPECT_TRUE(std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); })) << rope;
    EXPECT_EQ(s.position(), 4096);
  }
}

TEST_F(Stories260K, F16KvCacheStaysClose) {
  const auto ids = story_tokens(*tok_, 800);
  for (KeyRotation kr : {KeyRotation::AtWrite, KeyRotation::AtRead}) {
    SessionOptions a = options(R"({"rope_type":"yarn","factor":2})", 1024, kr), b = a;
    b.kv_cache = KvType::F16;
    InferenceSession s32(*model_, a), s16(*model_, b);
    const auto l32 = s32.forward(ids), l16 = s16.forward(ids);
    double worst = 0;
    for (size_t i = 0; i < l32.size(); ++i) worst = std::max(worst, double(std::abs(l32[i] - l16[i])));
    // f16 keeps 11 significant bits: logits (O(10)) move by a few 1e-2 at most.
    EXPECT_LT(worst, 0.05);
    EXPECT_GT(worst, 0.0);  // and it really is a different cache
  }
}

TEST_F(Stories260K, QuantizedKvCacheNeedsWholeBlocks) {
  SessionOptions o = options();
  o.kv_cache = KvType::Q8_0;
  try {
    InferenceSession s(*model_, o);
    FAIL() << "q8_0 accepted for head_dim 8";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("q8_0 needs head_dim a multiple of 32 (this model's is 8)"), std::string::npos) << e.what();
  }
}

TEST_F(Stories260K, RequestPolicy) {
  RopePolicy p;
  EXPECT_EQ(rope_scaling_for_request(*model_, 300, p), "");   // within the trained 512: plain RoPE
  EXPECT_EQ(rope_scaling_for_request(*model_, 512, p), "");
  EXPECT_EQ(nlohmann::json::parse(rope_scaling_for_request(*model_, 513, p))["factor"], 2.0);
  EXPECT_EQ(nlohmann::json::parse(rope_scaling_for_request(*model_, 3000, p))["factor"], 6.0);
  p.granularity = 4;
  EXPECT_EQ(nlohmann::json::parse(rope_scaling_for_request(*model_, 3000, p))["factor"], 8.0);
  p.max_factor = 4;
  EXPECT_THROW(rope_scaling_for_request(*model_, 3000, p), std::invalid_argument);
  p = RopePolicy{"linear", 1.0, 64};
  EXPECT_EQ(nlohmann::json::parse(rope_scaling_for_request(*model_, 1024, p))["rope_type"], "linear");
  p.method = "default";
  EXPECT_THROW(rope_scaling_for_request(*model_, 1024, p), std::invalid_argument);
  // The chosen setting runs.
  SessionOptions o = options(rope_scaling_for_request(*model_, 1500, RopePolicy{}), 1500);
  EXPECT_EQ(o.rope.type, RopeType::Yarn);
  EXPECT_EQ(o.rope.factor, 3.0);
}

TEST_F(Stories260K, RejectsOverflowAndBadTokens) {
  InferenceSession s(*model_, options("", 8));
  std::vector<int> nine(9, 5);
  EXPECT_THROW(s.forward(nine), std::length_error);
  std::vector<int> bad = {1, 9999};
  EXPECT_THROW(s.forward(bad), std::invalid_argument);
}

}  // namespace
}  // namespace ropescale

namespace ropescale {
namespace {

// The committed default model (head_dim 32: one q8_0 / q4_0 block a row) on real text past its
// trained 256 tokens.
std::vector<int> genesis_tokens(const test::DefaultModel& d, size_t n) {
  const auto path = test::shared_dir() / "data/kjv_genesis.txt";
  if (!std::filesystem::exists(path)) return {};
  auto ids = d.tok->encode(read_file_text(path.string()), true, false);
  ids.resize(std::min(ids.size(), n));
  return ids;
}

double mean_nll(const std::vector<float>& logits, const std::vector<int>& ids, int V) {
  double sum = 0;
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    const float* row = logits.data() + t * V;
    const float mx = *std::max_element(row, row + V);
    double z = 0;
    for (int v = 0; v < V; ++v) z += std::exp(double(row[v] - mx));
    sum += std::log(z) + mx - row[ids[t + 1]];
  }
  return sum / double(ids.size() - 1);
}

TEST(SessionKvCache, AllocatesWhatKvCacheBytesPredicts) {
  ROPESCALE_NEED_DEFAULT_MODEL(d);
  const auto& hp = d->model.hp;
  for (KvType type : {KvType::F32, KvType::F16, KvType::Q8_0, KvType::Q4_0}) {
    SessionOptions o;
    o.max_context = 1000;
    o.rope = rope_spec_for_model(d->model, "");
    o.kv_cache = type;
    InferenceSession s(d->model, o);
    EXPECT_EQ(s.kv_cache_bytes_allocated(), kv_cache_bytes(type, hp.n_layers, hp.n_kv_heads, hp.head_dim, 1000)) << to_string(type);
  }
  EXPECT_EQ(kv_cache_bytes(KvType::Q8_0, hp.n_layers, hp.n_kv_heads, hp.head_dim, 1000) * 64,
            kv_cache_bytes(KvType::F16, hp.n_layers, hp.n_kv_heads, hp.head_dim, 1000) * 34);
}

TEST(SessionKvCache, QuantizedCachesStayCloseToF32) {
  ROPESCALE_NEED_DEFAULT_MODEL(d);
  const auto ids = genesis_tokens(*d, 700);
  if (ids.size() < 700) GTEST_SKIP() << "SKIPPED LOUDLY: ../shared/data/kjv_genesis.txt is absent";
  const int V = d->model.hp.vocab_size;
  for (KeyRotation kr : {KeyRotation::AtWrite, KeyRotation::AtRead}) {
    SessionOptions o;
    o.max_context = 700;
    o.rope = rope_spec_for_model(d->model, R"({"rope_type":"yarn","factor":4})");  // 700 tokens: past the trained 256
    o.key_rotation = kr;
    o.chunk = 128;  // prefill chunks attend to quantized earlier chunks (decode-like narrow blocks and wide ones)
    double nll[4];
    std::vector<float> f32_logits;
    for (KvType type : {KvType::F32, KvType::F16, KvType::Q8_0, KvType::Q4_0}) {
      o.kv_cache = type;
      InferenceSession s(d->model, o);
      const auto logits = s.forward(ids, true);
      ASSERT_TRUE(std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); })) << to_string(type);
      nll[int(type)] = mean_nll(logits, ids, V);
      if (type == KvType::F32) f32_logits = logits;
      double worst = 0;
      for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, double(std::abs(logits[i] - f32_logits[i])));
      if (type != KvType::F32) {
        EXPECT_GT(worst, 0.0) << to_string(type) << ": the cache really changed";
      }
    }
    // Mean NLL relative to f32 (nats ~1.3 a byte): f16 ~1e-5, q8_0 within 0.5 %, q4_0 within 5 %, and q8_0 closer than q4_0.
    const auto rel = [&](KvType t) { return std::abs(nll[int(t)] - nll[0]) / nll[0]; };
    std::printf("  mean NLL %s: f32 %.5f, f16 %+.2e, q8_0 %+.2e, q4_0 %+.2e (relative)\n", kr == KeyRotation::AtRead ? "at read" : "at write",
                nll[0], rel(KvType::F16), rel(KvType::Q8_0), rel(KvType::Q4_0));
    EXPECT_LT(rel(KvType::F16), 1e-3);
    EXPECT_LT(rel(KvType::Q8_0), 5e-3);
    EXPECT_LT(rel(KvType::Q4_0), 5e-2);
    EXPECT_LT(rel(KvType::Q8_0), rel(KvType::Q4_0));
  }
}

}  // namespace
}  // namespace ropescale

namespace ropescale {
namespace {

// With one layer, a token's key and value depend on the token alone, so a stream through sinks + a
// sliding window must give, token for token, the logits of a fresh session prefilled with just the
// kept tokens (the sinks, then the window) at the same positions — the cache positions.
TEST(SessionWindow, SinksAndWindowEqualAFreshPrefillOfTheKeptTokens) {
  const LlamaModel m = test::tiny_llama(/*dim*/ 64, /*hidden*/ 96, /*layers*/ 1, /*heads*/ 2, /*kv*/ 1, /*vocab*/ 40, /*trained*/ 64, 5, 0.5f);
  std::mt19937 rng(3);
  std::vector<int> ids(150);
  for (auto& t : ids) t = int(rng() % 40);
  const int64_t W = 20;
  for (const int64_t S : {4, 0})
  for (const char* rope : {"", R"({"rope_type":"yarn","factor":2})", R"({"rope_type":"dynamic","factor":2})"}) {
    // q8_0 where keys are quantized before rotation (length-dependent frequencies: rotated at read), as the
    // fresh prefill quantizes them. With static frequencies the stream quantizes keys rotated at their text
    // positions and the fresh prefill at their cache positions: q8_0's rounding differs (O(1) in these
    // random logits), so that case runs in f32 here — the rows are read in place by the same code for
    // every type (the kernel tests compare each type with the twin).
    const bool dynamic = std::string(rope).find("dynamic") != std::string::npos;
    for (KvType kv : {KvType::F32, KvType::Q8_0}) {
      if (kv == KvType::Q8_0 && !dynamic) continue;
      SessionOptions o;
      o.rope = rope_spec_for_model(m, rope);
      o.kv_window = W, o.kv_sinks = S, o.chunk = 1, o.kv_cache = kv;
      InferenceSession stream(m, o);
      double worst = 0;
      for (size_t t = 0; t < ids.size(); ++t) {
        const auto got = stream.forward(std::span<const int>(&ids[t], 1));
        ASSERT_LE(stream.cache_length(), S + W);
        if (t < size_t(S + W)) continue;  // nothing evicted before token S + W
        std::vector<int> kept(ids.begin(), ids.begin() + S);  // the sinks, the W − 1 tokens before t, and t
        kept.insert(kept.end(), ids.begin() + long(t) - W + 1, ids.begin() + long(t) + 1);
        SessionOptions f = o;
        f.kv_window = f.kv_sinks = 0, f.chunk = 256, f.max_context = int64_t(kept.size());
        f.key_rotation = KeyRotation::AtRead;  // keys quantized before rotation, as a dynamic window stores them
        InferenceSession fresh(m, f);
        const auto want = fresh.forward(kept);
        for (size_t v = 0; v < want.size(); ++v) worst = std::max(worst, double(std::abs(got[v] - want[v])));
      }
      std::printf("  window %d + sinks %d vs fresh prefill, %s %s: max logit difference %.2e\n", int(W), int(S),
                  *rope ? rope : "no scaling", std::string(to_string(kv)).c_str(), worst);
      EXPECT_LT(worst, 5e-4) << rope << " " << to_string(kv);  // float rounding (decode vs prefill blocks); a wrong row is O(0.1)
      EXPECT_EQ(stream.position(), int64_t(ids.size()));
      EXPECT_EQ(stream.cache_length(), S + W);
    }
  }
}

// Prefill chunks through a window: keys rotated once at write (static frequencies; the sinks turned at
// read) against every key re-rotated at read at its cache position (the path of length-dependent
// frequencies) — dynamic NTK within its original length has exactly the static frequencies, so the
// two paths must agree on every logit, chunk after chunk.
TEST(SessionWindow, KeysRotatedOnceEqualKeysRotatedAtReadInChunks) {
  const LlamaModel m = test::tiny_llama(64, 96, 2, 4, 2, 40, 64, 17, 0.5f);
  const auto ids = [] {
    std::mt19937 rng(4);
    std::vector<int> v(300);
    for (auto& t : v) t = int(rng() % 40);
    return v;
  }();
  for (const int64_t S : {4, 0}) {
    SessionOptions o;
    o.kv_window = 40, o.kv_sinks = S, o.chunk = 7;  // capped at 10: chunks straddle evictions
    o.rope = rope_spec_for_model(m, "");
    InferenceSession once(m, o);
    o.rope = rope_spec_for_model(m, R"({"rope_type":"dynamic","factor":4})");  // S + W ≤ 64: base frequencies
    InferenceSession at_read(m, o);
    const auto a = once.forward(ids, true), b = at_read.forward(ids, true);
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
    EXPECT_LT(worst, 5e-4) << "sinks " << S;
    EXPECT_EQ(once.cache_length(), S + 40);
  }
}

TEST(SessionWindow, StreamsPastMaxContextAndRefusesToRewindIntoEvictedTokens) {
  ROPESCALE_NEED_DEFAULT_MODEL(d);
  SessionOptions o;
  o.rope = rope_spec_for_model(d->model, "");
  o.max_context = 256;
  o.kv_window = 200, o.kv_sinks = 4, o.chunk = 64;
  InferenceSession s(d->model, o);
  std::vector<int> ids(1000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = 'a' + int(i % 26);
  const auto logits = s.forward(ids);  // four times max_context, in chunks of 64
  EXPECT_TRUE(std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); }));
  EXPECT_EQ(s.position(), 1000);
  EXPECT_EQ(s.cache_length(), 204);
  EXPECT_EQ(s.options().chunk, 50);  // capped at W / 4: a chunk's first query still sees 150 recent tokens
  EXPECT_EQ(s.kv_cache_bytes_allocated(), kv_cache_bytes(KvType::F32, d->model.hp.n_layers, d->model.hp.n_kv_heads,
                                                          d->model.hp.head_dim, 4 + 200));
  EXPECT_THROW(s.rewind(500), std::out_of_range);  // evicted: the window keeps tokens from 800 on
  s.rewind(900);
  EXPECT_EQ(s.cache_length(), 104);
  SessionOptions bad = o;
  bad.kv_window = 0;
  EXPECT_THROW(InferenceSession(d->model, bad), std::invalid_argument);  // sinks without a window
}

}  // namespace
}  // namespace ropescale

namespace ropescale {
namespace {

std::vector<float> logits_with(const LlamaModel& m, const std::vector<int>& ids, SelfExtend se, KvType kv = KvType::F32,
                               const std::string& rope = "") {
  SessionOptions o;
  o.rope = rope_spec_for_model(m, rope);
  o.max_context = int64_t(ids.size());
  o.key_rotation = KeyRotation::AtRead;
  o.chunk = 100;  // chunks that straddle the window: queries before and after it in one chunk
  o.kv_cache = kv;
  o.self_extend = se;
  InferenceSession s(m, o);
  return s.forward(ids, true);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  return worst;
}

TEST(SessionSelfExtend, GroupOneAndALargeWindowAreHowPlainRopeAttends) {
  ROPESCALE_NEED_DEFAULT_MODEL(d);
  const auto ids = genesis_tokens(*d, 600);
  if (ids.size() < 600) GTEST_SKIP() << "SKIPPED LOUDLY: ../shared/data/kjv_genesis.txt is absent";
  for (const char* rope : {"", R"({"rope_type":"yarn","factor":4})"}) {
    const auto yarn = logits_with(d->model, ids, {}, KvType::F32, rope);
    // G = 1: every far key at its own position and the query at p + W − W = p — the two attentions
    // merged are the one attention, up to the merge's rounding.
    const double g1 = max_abs_diff(logits_with(d->model, ids, {1, 64}, KvType::F32, rope), yarn);
    std::printf("  Self-Extend G = 1 against plain (%s): max logit difference %.2e\n", *rope ? rope : "no scaling", g1);
    EXPECT_LT(g1, 1e-3) << rope;
    // W at least the sequence: every key is a neighbour — exactly plain RoPE.
    EXPECT_EQ(logits_with(d->model, ids, {4, 600}, KvType::F32, rope), yarn) << rope;
  }
  // G = 4, W = 64 at 600 tokens (past the trained 256): different, and finite, also over a q8_0 cache.
  const auto se = logits_with(d->model, ids, {4, 64}, KvType::Q8_0);
  EXPECT_GT(max_abs_diff(se, logits_with(d->model, ids, {})), 0.1);
  EXPECT_TRUE(std::all_of(se.begin(), se.end(), [](float v) { return std::isfinite(v); }));
  SessionOptions bad;
  bad.rope = rope_spec_for_model(d->model, "");
  bad.self_extend = {4, 0};
  EXPECT_THROW(InferenceSession(d->model, bad), std::invalid_argument);
  bad.self_extend = {4, 64};
  bad.kv_window = 128;
  EXPECT_THROW(InferenceSession(d->model, bad), std::invalid_argument);
}

}  // namespace
}  // namespace ropescale

namespace ropescale {
namespace {

std::vector<int> random_ids(size_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int> ids(n);
  for (auto& t : ids) t = int(rng() % uint32_t(vocab));
  return ids;
}

// A budget the stream never reaches changes nothing: the same chunks give the same logits, bit for bit
// (the key weights are a second pass after the attention).
TEST(SessionEviction, ABudgetNeverReachedChangesNothing) {
  const LlamaModel m = test::tiny_llama(64, 96, 2, 4, 2, 40, 64, 7, 0.5f);
  const auto ids = random_ids(120, 40, 5);
  SessionOptions o;
  o.rope = rope_spec_for_model(m, "");
  o.max_context = 120, o.chunk = 30;
  InferenceSession plain(m, o);
  o.kv_budget = 120;
  InferenceSession budget(m, o);
  EXPECT_EQ(budget.forward(ids, true), plain.forward(ids, true));
  EXPECT_EQ(budget.cache_length(), 120);
}

// Every eviction takes, in each layer, the least attended keys outside the recent half and the protected
// span — checked against the session's own received-attention record before the step, and the cache
// never holds more than the budget.
TEST(SessionEviction, EvictsTheLeastAttendedOutsideRecentAndProtectedKeys) {
  const LlamaModel m = test::tiny_llama(64, 96, 2, 4, 2, 40, 64, 9, 0.5f);
  const auto ids = random_ids(300, 40, 6);
  const int64_t B = 40;
  SessionOptions o;
  o.rope = rope_spec_for_model(m, R"({"rope_type":"yarn","factor":8})");
  o.kv_budget = B, o.chunk = 64;
  o.kv_protect = {{10, 15}, {100, 103}};
  InferenceSession s(m, o);
  EXPECT_EQ(s.options().chunk, 10);  // capped at B / 4
  s.forward(std::span<const int>(ids.data(), 40));  // prefill to the budget
  ASSERT_EQ(s.cache_length(), B);
  for (size_t t = 40; t < ids.size(); ++t) {
    std::vector<std::vector<int64_t>> before_pos;
    std::vector<std::vector<float>> before_received;
    for (int l = 0; l < m.hp.n_layers; ++l) {
      before_pos.emplace_back(s.cached_positions(l).begin(), s.cached_positions(l).end());
      before_received.emplace_back(s.received_attention(l).begin(), s.received_attention(l).end());
    }
    s.forward(std::span<const int>(&ids[t], 1));
    ASSERT_EQ(s.cache_length(), B);
    for (int l = 0; l < m.hp.n_layers; ++l) {
      const auto now = s.cached_positions(l);
      ASSERT_EQ(now.back(), int64_t(t));
      // Exactly one key left, the least attended among the eligible ones (older half, unprotected).
      std::vector<int64_t> gone;
      for (int64_t p : before_pos[l])
        if (std::find(now.begin(), now.end(), p) == now.end()) gone.push_back(p);
      ASSERT_EQ(gone.size(), 1u) << "token " << t << " layer " << l;
      const auto at = std::find(before_pos[l].begin(), before_pos[l].end(), gone[0]) - before_pos[l].begin();
      EXPECT_LT(at, B - B / 2) << "evicted from the recent half";
      EXPECT_FALSE((gone[0] >= 10 && gone[0] < 15) || (gone[0] >= 100 && gone[0] < 103)) << "evicted a protected key";
      for (int64_t i = 0; i < B - B / 2; ++i) {
        const int64_t p = before_pos[l][i];
        if ((p >= 10 && p < 15) || (p >= 100 && p < 103)) continue;
        EXPECT_LE(before_received[l][at], before_received[l][i]) << "token " << t << " layer " << l << ": kept a less attended key";
      }
      // Positions stay in text order.
      EXPECT_TRUE(std::is_sorted(now.begin(), now.end()));
    }
  }
  for (int l = 0; l < m.hp.n_layers; ++l)
    for (int64_t p : {10, 11, 12, 13, 14, 100, 101, 102})
      EXPECT_NE(std::find(s.cached_positions(l).begin(), s.cached_positions(l).end(), p), s.cached_positions(l).end()) << p;
  EXPECT_EQ(s.position(), 300);
}

// Kept keys keep their text positions: rotated once at write, or re-rotated at read from the
// positions the cache records, a static method gives the same logits after many evictions — and a
// q8_0 cache stays close to f32.
TEST(SessionEviction, KeysKeepTheirTextPositionsThroughEvictions) {
  const LlamaModel m = test::tiny_llama(64, 96, 2, 4, 2, 40, 64, 11, 0.5f);
  const auto ids = random_ids(400, 40, 7);
  SessionOptions o;
  o.rope = rope_spec_for_model(m, R"({"rope_type":"yarn","factor":8})");
  o.kv_budget = 64, o.chunk = 16;
  o.kv_protect = {{0, 4}};
  InferenceSession at_write(m, o);
  o.key_rotation = KeyRotation::AtRead;
  InferenceSession at_read(m, o);
  const auto a = at_write.forward(ids, true), b = at_read.forward(ids, true);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  EXPECT_LT(worst, 1e-4);  // a key at a wrong position moves logits by O(0.1)
  EXPECT_EQ(at_read.cache_length(), 64);
  for (int l = 0; l < m.hp.n_layers; ++l) EXPECT_EQ(at_write.cached_positions(l)[0], 0);  // protected
  // Rewinding within the recent run works; into evicted tokens it refuses.
  EXPECT_THROW(at_write.rewind(100), std::out_of_range);
  at_write.rewind(390);
  EXPECT_EQ(at_write.cache_length(), 54);
}

TEST(SessionEviction, RefusesBadBudgetsAndFullProtection) {
  const LlamaModel m = test::tiny_llama(64, 96, 1, 2, 1, 40, 64, 13, 0.5f);
  SessionOptions o;
  o.rope = rope_spec_for_model(m, "");
  o.kv_budget = 16;
  o.kv_protect = {{0, 100}};  // everything protected: nothing can leave
  InferenceSession s(m, o);
  const auto ids = random_ids(40, 40, 8);
  EXPECT_THROW(s.forward(ids), std::length_error);
  using Edit = void (*)(SessionOptions&);
  for (Edit bad : std::initializer_list<Edit>{[](SessionOptions& b) { b.kv_budget = -1; }, [](SessionOptions& b) { b.kv_budget = 1; },
                   [](SessionOptions& b) { b.kv_window = 32; }, [](SessionOptions& b) { b.self_extend = {4, 8}; },
                   [](SessionOptions& b) { b.kv_protect = {{5, 2}}; }}) {
    SessionOptions b = o;
    bad(b);
    EXPECT_THROW(InferenceSession(m, b), std::invalid_argument);
  }
}

}  // namespace
}  // namespace ropescale
