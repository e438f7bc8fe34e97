// The RULER-style tasks: every generator's prompt holds its needles where it
// says, at the lengths asked, with the references the scorer checks; an oracle
// that copies the answer scores 1 and a random one ~0; the runtime's needle NLL
// equals the answer tokens' NLL from one uninterrupted forward pass.
#include "ropescale/eval/tasks.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "tiny_model.h"

namespace ropescale {
namespace {

const Llama2cTokenizer& bytes() {
  static const Llama2cTokenizer t = Llama2cTokenizer::byte_level();
  return t;
}

// Byte-level: token = 3 + byte, BOS 1.
std::string text_of(const std::vector<int>& ids, size_t from = 0, size_t to = std::string::npos) {
  std::string s;
  for (size_t i = from; i < std::min(to, ids.size()); ++i)
    if (ids[i] >= 3) s += char(ids[i] - 3);
  return s;
}

TaskOptions all_tasks(TaskWording w) {
  TaskOptions o;
  for (const auto& t : task_infos()) o.tasks.push_back(t.kind);
  o.lengths = {256, 700};
  o.depths = {0.0, 0.5, 1.0};
  o.trials = 2;
  o.wording = w;
  return o;
}

TEST(Tasks, EveryGeneratorPutsItsNeedlesWhereItSays) {
  for (TaskWording w : {TaskWording::Compact, TaskWording::Ruler}) {
    TaskOptions o = all_tasks(w);
    if (w == TaskWording::Ruler) o.lengths = {700, 1200};  // RULER's wording does not fit 256 tokens
    const auto samples = build_task_samples(bytes(), o);
    ASSERT_EQ(samples.size(), o.tasks.size() * 2 * 3 * 2);
    for (const auto& s : samples) {
      const std::string name = task_info(s.kind).name;
      SCOPED_TRACE(name + " at " + std::to_string(s.length) + ", depth " + std::to_string(s.depth));
      EXPECT_EQ(s.ids.front(), 1);  // BOS
      EXPECT_LE(int64_t(s.ids.size()), s.length);
      EXPECT_GE(int64_t(s.ids.size()), s.length - 25);  // at most one filler sentence short
      ASSERT_EQ(s.answers.size(), s.references.size());
      // Each answer is " reference" right after the prompt, and the prompt never states it last.
      for (size_t a = 0; a < s.answers.size(); ++a) EXPECT_EQ(text_of(s.answers[a]), std::string(" ").append(s.references[a]));
      // The needles: where needle_at says, each naming its reference.
      ASSERT_FALSE(s.needle_at.empty());
      const std::string asked = text_of(s.ids, size_t(s.needle_at[0]), size_t(s.needle_at[0]) + 48);
      if (s.kind == TaskKind::KeyValue) {
        EXPECT_EQ(asked.rfind("The code for ", 0), 0u) << asked;
      } else if (s.kind == TaskKind::VariableTracking) {
        EXPECT_EQ(asked.rfind("VAR " + s.references[0] + " = ", 0), 0u) << asked;
      } else {
        EXPECT_EQ(asked.rfind(w == TaskWording::Ruler ? "One of the special magic numbers for " : "The magic number for ", 0), 0u)
            << asked;
      }
      const std::string prompt = text_of(s.ids);
      for (const auto& ref : s.references) EXPECT_NE(prompt.find(ref), std::string::npos) << ref;
      // The asked needle sits at its depth of the filler, to within a sentence: count the filler tokens
      // before it (the haystack before it, less the other needles there).
      int64_t filler_before = s.needle_at[0] - s.haystack_begin, filler = s.haystack_end - s.haystack_begin;
      for (size_t i = 0; i < s.needle_at.size(); ++i) {
        filler -= s.needle_tokens[i];
        if (i > 0 && s.needle_at[i] < s.needle_at[0]) filler_before -= s.needle_tokens[i];
      }
      EXPECT_NEAR(double(filler_before), s.depth * double(filler), 24.0);
      if (s.kind == TaskKind::VariableTracking) {  // the chain in order
        for (size_t i = 1; i < s.needle_at.size(); ++i) EXPECT_GT(s.needle_at[i], s.needle_at[i - 1]);
      }
    }
  }
}

TEST(Tasks, DeterministicForASeedAndOtherwiseDifferent) {
  TaskOptions o = all_tasks(TaskWording::Compact);
  const auto a = build_task_samples(bytes(), o), b = build_task_samples(bytes(), o);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].ids, b[i].ids);
  o.seed = 2;
  const auto c = build_task_samples(bytes(), o);
  EXPECT_NE(a[0].references, c[0].references);
  o.lengths = {64};
  EXPECT_THROW(build_task_samples(bytes(), o), std::invalid_argument);
  o = all_tasks(TaskWording::Ruler);  // 256 tokens cannot hold RULER's wording
  try {
    build_task_samples(bytes(), o);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("compact wording is shorter"), std::string::npos) << e.what();
  }
}

TEST(Tasks, StringMatchAllIsRulersMetric) {
  EXPECT_DOUBLE_EQ(string_match_all(" 1234567.", {"1234567"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_all(" 1234567 and 7654321", {"1234567", "7654321", "1111111", "2222222"}), 0.5);
  EXPECT_DOUBLE_EQ(string_match_all("they are: abcde, FGHIJ", {"ABCDE", "fghij"}), 1.0);  // case-insensitive
  EXPECT_DOUBLE_EQ(string_match_all("", {"1"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_all("x", {}), 0.0);
}

// A target that answers without a model: the oracle copies the references, the
// random one says random digits; every answer token has log-probability −1.
class ScriptedTarget : public EvalTarget {
 public:
  explicit ScriptedTarget(bool oracle) : oracle_(oracle) {}
  const Tokenizer& tokenizer() const override { return bytes(); }
  std::string describe() const override { return "scripted"; }
  bool remote() const override { return false; }
  std::vector<PerplexityResult> perplexity(std::span<const int>, const std::vector<RopeSetting>&, const PerplexityOptions&,
                                           const EvalProgress&) const override {
    return {};
  }
  std::vector<std::vector<RetrievalOutcome>> retrieve(const std::vector<RopeSetting>& methods,
                                                      const std::vector<const RetrievalPrompt*>& prompts, int generate,
                                                      const EvalProgress&) const override {
    std::mt19937_64 rng(7);
    std::vector<std::vector<RetrievalOutcome>> out(methods.size());
    for (auto& per : out)
      for (const auto* p : prompts) {
        RetrievalOutcome o;
        for (const auto& a : p->answers) {
          if (oracle_) {
            o.generated += text_of(a);
            o.generated += ',';
          } else {
            o.generated += ' ';
            o.generated += std::to_string(rng() % 10000000);
          }
          o.answer_logprobs.push_back(-double(a.size()));
        }
        EXPECT_GE(generate, int(o.generated.size() / 2));  // room to say every reference
        per.push_back(o);
      }
    return out;
  }

 private:
  bool oracle_;
};

TEST(Tasks, AnOracleScoresOneAndRandomAnswersAboutZero) {
  const auto samples = build_task_samples(bytes(), all_tasks(TaskWording::Compact));
  RopeSetting m;
  m.label = "m";
  const auto good = evaluate_tasks(ScriptedTarget(true), {m}, samples);
  const auto bad = evaluate_tasks(ScriptedTarget(false), {m}, samples);
  ASSERT_EQ(good.size(), samples.size());
  double sum_bad = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    EXPECT_DOUBLE_EQ(good[i].score, 1.0);
    EXPECT_DOUBLE_EQ(good[i].needle_nll, 1.0);  // −1 per token
    sum_bad += bad[i].score;
  }
  EXPECT_LT(sum_bad / double(bad.size()), 0.02);
  // Cells by depth and totals over depths.
  const auto cells = task_cells(good), totals = task_cells(good, true);
  EXPECT_EQ(cells.size(), task_infos().size() * 2 * 3);
  EXPECT_EQ(totals.size(), task_infos().size() * 2);
  for (const auto& c : totals) {
    EXPECT_EQ(c.trials, 6);
    EXPECT_EQ(c.exact, 6);
    EXPECT_TRUE(std::isnan(c.depth));
  }
}

TEST(Tasks, NeedleNllIsTheAnswerTokensNllFromOneForwardPass) {
  const LlamaModel model = test::tiny_llama(16, 32, 2, 2, 1, 259, 64, /*seed*/ 3, 0.5f);
  TaskOptions o;
  o.tasks = {TaskKind::NiahMultivalue, TaskKind::KeyValue};
  o.lengths = {260};
  o.depths = {0.5};
  o.trials = 1;
  o.wording = TaskWording::Compact;
  const auto samples = build_task_samples(bytes(), o);
  const auto methods = resolve_eval_methods(model, parse_eval_methods({"none,yarn:4"}, 64));
  const auto trials = evaluate_tasks(LocalTarget(model, bytes(), RunOptions{}), methods, samples);
  ASSERT_EQ(trials.size(), 4u);
  for (size_t k = 0; k < trials.size(); ++k) {
    const TaskSample& s = samples[k % samples.size()];
    InferenceSession session(model, session_options_for(methods[k / samples.size()], RunOptions{}, 512));
    double expected = 0;
    for (const auto& a : s.answers) {
      std::vector<int> all = s.ids;
      all.insert(all.end(), a.begin(), a.end());
      session.reset();
      const auto logits = session.forward(all, true);
      double nll = 0;
      for (size_t i = s.ids.size(); i < all.size(); ++i) {
        const float* row = logits.data() + (i - 1) * 259;
        double z = 0;
        for (int v = 0; v < 259; ++v) z += std::exp(double(row[v]));
        nll += std::log(z) - row[all[i]];
      }
      expected += nll / double(a.size());
    }
    EXPECT_NEAR(trials[k].needle_nll, expected / double(s.answers.size()), 1e-4) << k;
  }
}

}  // namespace
}  // namespace ropescale
