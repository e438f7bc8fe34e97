// The perplexity metric: window accounting, NLL against hand computation on a
// model built in the test, and the real model's short-context behaviour.
#include "ropescale/eval/perplexity.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "ropescale/model/tokenizer.h"
#include "test_support.h"
#include "tiny_model.h"

namespace ropescale {
namespace {

// How many times each stream index is scored.
std::vector<int> coverage(const std::vector<EvalWindow>& ws, int64_t n) {
  std::vector<int> c(n, 0);
  for (const auto& w : ws)
    for (int64_t t = w.score_from; t < w.end - w.begin; ++t) ++c[w.begin + t];
  return c;
}

TEST(Windows, NonOverlappingFullWindowsOnly) {
  const auto ws = plan_windows(1000, 256, 0);
  ASSERT_EQ(ws.size(), 3u);  // the partial 4th window (768 … 999) is dropped
  for (size_t i = 0; i < ws.size(); ++i) {
    EXPECT_EQ(ws[i].begin, int64_t(i) * 256);
    EXPECT_EQ(ws[i].end - ws[i].begin, 256);
    EXPECT_EQ(ws[i].score_from, 1);
  }
  const auto c = coverage(ws, 1000);
  EXPECT_EQ(std::count(c.begin(), c.end(), 1), 3 * 255);
  EXPECT_EQ(std::count(c.begin(), c.end(), 2), 0);
  EXPECT_TRUE(plan_windows(100, 256, 0).empty());
}

TEST(Windows, SlidingScoresEveryTokenExactlyOnce) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t n = 2 + rng() % 3000, ctx = 2 + rng() % 700, stride = 1 + rng() % (ctx - 1);
    const auto ws = plan_windows(n, ctx, stride);
    const auto c = coverage(ws, n);
    EXPECT_EQ(c[0], 0);
    for (int64_t i = 1; i < n; ++i) ASSERT_EQ(c[i], 1) << "n " << n << " ctx " << ctx << " stride " << stride << " index " << i;
    for (const auto& w : ws) {
      EXPECT_LE(w.end - w.begin, ctx);
      EXPECT_LE(w.end, n);
    }
  }
  // The protocol of the YaRN paper: after the first window, only the last S tokens are scored.
  const auto ws = plan_windows(4096, 1024, 256);
  ASSERT_GE(ws.size(), 3u);
  EXPECT_EQ(ws[0].score_from, 1);
  EXPECT_EQ(ws[1].begin, 256);
  EXPECT_EQ(ws[1].score_from, 1024 - 256);
  EXPECT_THROW(plan_windows(100, 1, 0), std::invalid_argument);
  EXPECT_THROW(plan_windows(100, 10, 10), std::invalid_argument);
}

// One layer whose output projections are zero leaves the residual stream as
// the embedding, so logits = classifier · rmsnorm(embedding[token]) and the
// NLL of every next token can be written down by hand.
TEST(Perplexity, TinyModelMatchesHandComputation) {
  LlamaModel m = test::tiny_llama(/*dim*/ 2, /*hidden*/ 2, /*layers*/ 1, /*heads*/ 1, /*kv*/ 1, /*vocab*/ 3, /*trained*/ 16);
  m.hp.norm_eps = 0.0f;
  std::fill(m.layers[0].wo.begin(), m.layers[0].wo.end(), 0.0f);
  std::fill(m.layers[0].w2.begin(), m.layers[0].w2.end(), 0.0f);
  m.token_embedding = {1, 0,   // token 0 → rmsnorm (√2, 0)
                       0, 2,   // token 1 → (0, √2)
                       3, 3};  // token 2 → (1, 1)
  m.classifier = {1, 0,        // logits = (x0, x1, x0 + x1)
                  0, 1,
                  1, 1};
  const double r2 = std::sqrt(2.0);
  // By hand: after token 0 the logits are (√2, 0, √2); after 1, (0, √2, √2); after 2, (1, 1, 2).
  auto nll = [](double a, double b, double c, double target) { return std::log(std::exp(a) + std::exp(b) + std::exp(c)) - target; };
  const std::vector<int> ids{0, 1, 2, 0, 2, 1, 1, 0};
  const double expected[] = {nll(r2, 0, r2, 0),  nll(0, r2, r2, r2), nll(1, 1, 2, 1), nll(r2, 0, r2, r2),
                             nll(1, 1, 2, 1),    nll(0, r2, r2, r2), nll(0, r2, r2, 0)};
  double sum = 0;
  for (double e : expected) sum += e;

  PerplexityOptions opt;
  opt.ctxs = {8};
  opt.run.chunk = 3;  // windows cross chunk boundaries
  const auto res = evaluate_perplexity(m, ids, resolve_eval_methods(m, {{"none", ""}}), opt);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].tokens, 7);
  EXPECT_NEAR(res[0].nll, sum / 7, 1e-6);
  EXPECT_NEAR(res[0].ppl, std::exp(sum / 7), 1e-5);
  for (int t = 1; t < 8; ++t) EXPECT_NEAR(res[0].position_nll[t], expected[t - 1], 1e-6) << t;
  // Buckets of 3 positions: {0,1,2}, {3,4,5}, {6,7}; position 0 is never scored.
  const auto b = nll_buckets(res[0], 3);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].tokens, 2);
  EXPECT_NEAR(b[0].nll, (expected[0] + expected[1]) / 2, 1e-6);
  EXPECT_EQ(b[2].start, 6);
  EXPECT_EQ(b[2].end, 8);
  EXPECT_NEAR(b[2].nll, (expected[5] + expected[6]) / 2, 1e-6);
  // Sliding windows of 4 every 2 score each of the 7 predictable tokens once.
  opt.ctxs = {4};
  opt.stride = 2;
  const auto slide = evaluate_perplexity(m, ids, resolve_eval_methods(m, {{"none", ""}}), opt);
  EXPECT_EQ(slide[0].tokens, 7);
  EXPECT_NEAR(slide[0].nll, sum / 7, 1e-6);  // this model has no context, so the windows change nothing
  // A BOS (token 2 here) before every window of ctx − 1 = 4 stream tokens, as a served prompt has:
  // [2 | 0 1 2 0] and [2 | 2 1 1 0]; the first stream token of each is context only.
  opt.ctxs = {5};
  opt.stride = 0;
  opt.bos_each_window = 2;
  const auto bos = evaluate_perplexity(m, ids, resolve_eval_methods(m, {{"none", ""}}), opt);
  EXPECT_EQ(bos[0].windows, 2);
  EXPECT_EQ(bos[0].tokens, 6);
  EXPECT_EQ(bos[0].position_tokens[0] + bos[0].position_tokens[1], 0);
  EXPECT_NEAR(bos[0].position_nll[2], expected[0] + expected[4], 1e-6);
  EXPECT_NEAR(bos[0].nll, (expected[0] + expected[1] + expected[2] + expected[4] + expected[5] + expected[6]) / 6, 1e-6);
  opt.ctxs = {2};
  EXPECT_THROW(evaluate_perplexity(m, ids, resolve_eval_methods(m, {{"none", ""}}), opt), std::invalid_argument);
}

std::filesystem::path stories() { return test::shared_dir() / "models/stories260K"; }

TEST(Perplexity, Stories260KShortContextAndDynamicMethods) {
  if (!std::filesystem::exists(stories() / "stories260K.bin")) GTEST_SKIP() << "SKIPPED LOUDLY: " << stories() << " is absent";
  const LlamaModel m = load_model((stories() / "stories260K.bin").string());
  const auto tok = Llama2cTokenizer::load((stories() / "tok512.bin").string(), 512);
  std::ifstream in(test::shared_dir() / "data/tinystories_valid_head.txt");
  std::string text(20000, '\0');
  in.read(text.data(), text.size());
  const auto ids = tok.encode(text, true, false);
  ASSERT_GT(ids.size(), 2048u);
  PerplexityOptions opt;
  opt.ctxs = {512};
  const auto methods = resolve_eval_methods(m, parse_eval_methods({"none,dynamic,dynamic_yarn,linear:4"}, 512));
  const auto r = evaluate_perplexity(m, std::span<const int>(ids.data(), 2048), methods, opt);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].windows, 4);
  EXPECT_EQ(r[0].tokens, 4 * 511);
  // SOURCES.md: about 1.4 nats / token at short context (reported val loss 1.297).
  EXPECT_GT(r[0].nll, 1.2);
  EXPECT_LT(r[0].nll, 1.6);
  // Dynamic methods are plain RoPE within the trained length; a static 4× interpolation is not.
  EXPECT_NEAR(r[1].nll, r[0].nll, 1e-9);
  EXPECT_NEAR(r[2].nll, r[0].nll, 1e-9);
  EXPECT_GT(r[3].nll, r[0].nll + 0.1);
}

}  // namespace
}  // namespace ropescale
