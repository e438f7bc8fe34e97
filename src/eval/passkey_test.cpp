#include "ropescale/eval/passkey.h"

#include <cmath>
#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "test_support.h"

namespace ropescale {
namespace {

std::filesystem::path stories() { return test::shared_dir() / "models/stories260K"; }

class Passkey : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(stories() / "stories260K.bin")) GTEST_SKIP() << "SKIPPED LOUDLY: " << stories() << " is absent";
    tok_ = std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load((stories() / "tok512.bin").string(), 512));
  }
  std::string text(const std::vector<int>& ids, size_t from = 0, size_t to = std::string::npos) const {
    std::string s;
    for (size_t i = std::max<size_t>(from, 1); i < std::min(to, ids.size()); ++i) s += tok_->decode(ids[i - 1], ids[i]);
    return s;
  }
  std::unique_ptr<Llama2cTokenizer> tok_;
};

TEST_F(Passkey, PromptsHaveTheirLengthNeedleAndQuestion) {
  PasskeyOptions o;
  o.lengths = {200, 600};
  o.depths = {0, 0.5, 1};
  o.trials = 3;
  const auto ps = build_passkey_prompts(*tok_, o);
  ASSERT_EQ(ps.size(), 2u * 3 * 3);
  std::set<std::string> keys;
  for (const auto& p : ps) {
    EXPECT_LE(int64_t(p.ids.size()), p.length);
    EXPECT_GE(int64_t(p.ids.size()), p.length - 8);  // at most one filler sentence short
    EXPECT_EQ(p.ids[0], tok_->bos());
    EXPECT_EQ(p.key.size(), 5u);
    keys.insert(p.key);
    const std::string all = text(p.ids);
    EXPECT_NE(all.find("The pass key is " + p.key + ". Remember it. " + p.key + " is the pass key."), std::string::npos);
    // Whole sentences only; the prompt ends with the question (the tokenizer may keep the space before the key).
    const size_t q = all.rfind(". What is the pass key? The pass key is");
    ASSERT_NE(q, std::string::npos) << all;
    EXPECT_LE(all.size() - q, 40u);
    EXPECT_EQ(text(p.ids, p.needle_at, p.needle_at + 20).rfind(" The pass key is " + p.key, 0), 0u)
        << text(p.ids, p.needle_at, p.needle_at + 20);
    // The needle sits at its depth of the filler, to within one sentence (≤ 8 tokens).
    const int64_t intro = int64_t(tok_->encode("There is an important info hidden inside a lot of irrelevant text. Find it "
                                               "and memorize it. I will quiz you about the important information there.",
                                               true, false).size());
    const int64_t needle = int64_t(tok_->encode("The pass key is " + p.key + ". Remember it. " + p.key + " is the pass key.", false, false).size());
    const int64_t question = int64_t(tok_->encode("What is the pass key? The pass key is", false, false).size());
    const int64_t filler = int64_t(p.ids.size()) - intro - needle - question;
    EXPECT_NEAR(double(p.needle_at - intro), p.depth * double(filler), 8.0) << p.length << " " << p.depth;
    // The answers: 1 + alternatives, the first the key, all distinct.
    ASSERT_EQ(p.answers.size(), 10u);
    std::vector<int> with_key = p.ids;
    with_key.insert(with_key.end(), p.answers[0].begin(), p.answers[0].end());
    const std::string answered = text(with_key);
    EXPECT_EQ(answered.substr(answered.size() - 22), " The pass key is " + p.key) << answered;
  }
  EXPECT_GT(keys.size(), 15u);  // keys differ across trials
  // The same options give the same prompts; another seed other keys.
  EXPECT_EQ(build_passkey_prompts(*tok_, o)[4].ids, ps[4].ids);
  o.seed = 2;
  EXPECT_NE(build_passkey_prompts(*tok_, o)[4].key, ps[4].key);
  o.lengths = {40};
  EXPECT_THROW(build_passkey_prompts(*tok_, o), std::invalid_argument);
  o.lengths = {200};
  o.depths = {1.5};
  EXPECT_THROW(build_passkey_prompts(*tok_, o), std::invalid_argument);
}

TEST_F(Passkey, HaystackFromText) {
  PasskeyOptions o;
  o.lengths = {300};
  o.depths = {0.5};
  o.trials = 1;
  o.haystack = "Lily went to the park. She saw a big dog and they played with a ball all day long.";
  const auto p = build_passkey_prompts(*tok_, o).at(0);
  EXPECT_EQ(p.ids.size(), 300u);  // a haystack file is cut to the exact length
  EXPECT_NE(text(p.ids).find("Lily went to the park."), std::string::npos);
}

TEST_F(Passkey, ScoresAgreeWithAFreshForwardPass) {
  const LlamaModel m = load_model((stories() / "stories260K.bin").string());
  PasskeyOptions o;
  o.lengths = {300, 700};
  o.depths = {0.25, 0.75};
  o.trials = 1;
  o.alternatives = 4;
  const auto prompts = build_passkey_prompts(*tok_, o);
  const auto methods = resolve_eval_methods(m, parse_eval_methods({"none,yarn:2"}, 512));
  const auto trials = evaluate_passkey(LocalTarget(m, *tok_, o.run), methods, prompts);
  ASSERT_EQ(trials.size(), 2u * 4);
  for (const auto& t : trials) {
    EXPECT_GE(t.rank, 1);
    EXPECT_LE(t.rank, 5);
    EXPECT_LT(t.key_logprob, 0);
  }
  // log p(key | prompt) from one uninterrupted pass over prompt + key.
  const auto& p = prompts[3];
  SessionOptions so = session_options_for(methods[1], RunOptions{}, 1024);
  InferenceSession s(m, so);
  std::vector<int> all = p.ids;
  all.insert(all.end(), p.answers[0].begin(), p.answers[0].end());
  const auto logits = s.forward(all, true);
  double lp = 0;
  for (size_t i = p.ids.size(); i < all.size(); ++i) {
    const float* row = logits.data() + (i - 1) * 512;
    double z = 0;
    for (int v = 0; v < 512; ++v) z += std::exp(double(row[v]));
    lp += row[all[i]] - std::log(z);
  }
  EXPECT_NEAR(trials[4 + 3].key_logprob, lp, 1e-3);
  EXPECT_EQ(trials[4 + 3].key_tokens, int(p.answers[0].size()));
  const auto cells = passkey_cells(trials, o.alternatives);
  ASSERT_EQ(cells.size(), 8u);
  for (const auto& c : cells) {
    EXPECT_EQ(c.trials, 1);
    EXPECT_GE(c.rank_score, 0.0);
    EXPECT_LE(c.rank_score, 1.0);
    EXPECT_NEAR(c.rank_score, 1.0 - (c.mean_rank - 1) / 4, 1e-12);
  }
}

TEST(PasskeyCells, Aggregation) {
  std::vector<PasskeyTrial> t{{"a", 512, 0.5, 0, "1", "", true, 1, -1, 2}, {"a", 512, 0.5, 1, "2", "", false, 3, -2, 4},
                              {"b", 512, 0.5, 0, "1", "", false, 5, -3, 3}};
  const auto c = passkey_cells(t, 4);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].trials, 2);
  EXPECT_EQ(c[0].exact, 1);
  EXPECT_DOUBLE_EQ(c[0].mean_rank, 2.0);
  EXPECT_DOUBLE_EQ(c[0].rank_score, (1.0 + 0.5) / 2);
  EXPECT_DOUBLE_EQ(c[1].rank_score, 0.0);
  EXPECT_DOUBLE_EQ(c[0].needle_nll, (1.0 / 2 + 2.0 / 4) / 2);  // per key token, averaged over trials
  EXPECT_DOUBLE_EQ(c[1].needle_nll, 1.0);
}

TEST(PasskeyAnswers, ExactAndRank) {
  EXPECT_TRUE(passkey_exact(" 68217. Remember", "68217"));
  EXPECT_TRUE(passkey_exact("68217", "68217"));
  EXPECT_FALSE(passkey_exact(" 682170", "68217"));  // more digits is another number
  EXPECT_FALSE(passkey_exact(" 6821", "68217"));
  EXPECT_FALSE(passkey_exact("   ", "68217"));
  PasskeyTrial t;
  rank_passkey_answers(t, {-3.0, -1.0, -5.0, -2.5}, {{1, 2, 3}, {4}, {5}, {6}});
  EXPECT_EQ(t.rank, 3);  // two alternatives are more likely
  EXPECT_DOUBLE_EQ(t.key_logprob, -3.0);
  EXPECT_EQ(t.key_tokens, 3);
}

}  // namespace
}  // namespace ropescale
