// LongRoPE search: the operators keep the constraints (monotone, bounds, grid),
// the seeds are PI, NTK and YaRN as published, a search on a synthetic fitness
// with a known optimum finds it, the same seed gives the same search, and a
// search resumed from a checkpoint ends exactly where the uninterrupted one does.
#include "ropescale/calibrate/longrope_search.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ropescale/rope/frequencies.h"

namespace ropescale {
namespace {

RopeSpec base_spec(double factor = 8) {
  RopeSpec s;
  s.type = RopeType::Yarn;
  s.theta = 10000;
  s.head_dim = s.rotary_dim = 32;
  s.original_max_position = 256;
  s.factor = factor;
  return s;
}

LongRopeSearchOptions options_for(double factor) {
  LongRopeSearchOptions o;
  o.upper = 2 * factor;
  o.attention_factor = longrope_attention_factor(factor, 256);
  return o;
}

TEST(LongRopeSearch, RandomSourceIsTheSameEverywhere) {
  SearchRandom a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    EXPECT_NE(x, c.next());
  }
  SearchRandom r(7);
  for (int i = 0; i < 1000; ++i) {
    const double u = r.uniform();
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
    const int64_t k = r.below(5);
    EXPECT_GE(k, 0);
    EXPECT_LT(k, 5);
  }
}

TEST(LongRopeSearch, SeedsArePiNtkAndYarnOnTheGrid) {
  const RopeSpec base = base_spec(8);
  const LongRopeSearchOptions o = options_for(8);
  const auto seeds = longrope_seed_factors(base, o);
  ASSERT_GE(seeds.size(), 4u);
  for (double x : seeds[0]) EXPECT_DOUBLE_EQ(x, 8.0);               // PI
  EXPECT_DOUBLE_EQ(seeds[1].front(), 1.0);                          // NTK: s^(2j/(d−2))
  EXPECT_NEAR(seeds[1][5], std::pow(8.0, 10.0 / 30.0), 0.005);
  EXPECT_DOUBLE_EQ(seeds[1].back(), 8.0);
  RopeSpec yarn = base;
  const auto div = divisors_against_default(yarn, compute_frequencies(yarn));
  for (size_t j = 0; j < div.size(); ++j) EXPECT_NEAR(seeds[2][j], div[j], 0.005) << j;  // YaRN's divisors
  LongRopeCandidate c;
  c.attention_factor = o.attention_factor;
  for (const auto& f : seeds) {
    c.factors = f;
    c.attention_factor = 1.0;
    EXPECT_TRUE(candidate_is_valid(c, o));
  }
  // One rotary pair (rotary_dim 2): PI, NTK (s at the last pair) and YaRN (its one pair extrapolates), no more.
  RopeSpec one = base_spec(8);
  one.rotary_dim = 2;
  EXPECT_EQ(longrope_seed_factors(one, o), (std::vector<std::vector<double>>{{8.0}, {8.0}, {1.0}}));
  // An earlier result of another length is accepted only with the same number of pairs.
  EXPECT_THROW(longrope_seed_factors(base, o, {{1, 2, 3}}), std::invalid_argument);
}

TEST(LongRopeSearch, OperatorsKeepMonotoneBoundsAndGrid) {
  const LongRopeSearchOptions o = options_for(8);
  SearchRandom rng(3);
  LongRopeCandidate a, b;
  a.factors = longrope_seed_factors(base_spec(8), o)[1];
  b.factors = longrope_seed_factors(base_spec(8), o)[2];
  a.attention_factor = b.attention_factor = 1.2;
  ASSERT_TRUE(candidate_is_valid(a, o));
  int changed = 0, crossed_valid = 0;
  for (int i = 0; i < 2000; ++i) {
    const LongRopeCandidate m = mutate_candidate(i % 2 ? a : b, o, rng);
    EXPECT_TRUE(candidate_is_valid(m, o));
    changed += m.factors != (i % 2 ? a : b).factors;
    a = m;
    const LongRopeCandidate x = cross_candidates(a, b, o, rng);
    crossed_valid += candidate_is_valid(x, o);
    for (size_t j = 0; j < x.factors.size(); ++j)
      EXPECT_TRUE(x.factors[j] == a.factors[j] || x.factors[j] == b.factors[j]);  // every gene from a parent
  }
  EXPECT_GT(changed, 1500);
  EXPECT_GT(crossed_valid, 0);
  // The check itself refuses each broken constraint.
  LongRopeCandidate bad = b;
  std::swap(bad.factors[3], bad.factors[12]);
  EXPECT_FALSE(candidate_is_valid(bad, o));  // not monotone
  bad = b, bad.factors.back() = o.upper + 1;
  EXPECT_FALSE(candidate_is_valid(bad, o));  // past the bound
  bad = b, bad.factors[4] += 0.004;
  EXPECT_FALSE(candidate_is_valid(bad, o));  // off the grid
  bad = b, bad.attention_factor = 0.9;
  EXPECT_FALSE(candidate_is_valid(bad, o));  // attention below 1
}

// A separable bowl around a known monotone optimum on the grid.
struct Bowl {
  std::vector<double> target;
  double attention;
  double operator()(const LongRopeCandidate& c) const {
    double e = 0;
    for (size_t j = 0; j < target.size(); ++j) e += std::pow(std::log(c.factors[j] / target[j]), 2);
    return e + 10 * std::pow(c.attention_factor - attention, 2);
  }
};

Bowl known_optimum() {
  Bowl b;
  for (int j = 0; j < 16; ++j) b.target.push_back(j < 4 ? 1.0 : std::round(100 * std::min(12.0, 1.0 + 0.9 * (j - 3))) / 100);
  b.attention = 1.15;
  return b;
}

TEST(LongRopeSearch, FindsAKnownOptimum) {
  const RopeSpec base = base_spec(8);
  LongRopeSearchOptions o = options_for(8);
  o.iterations = 80;
  const Bowl bowl = known_optimum();
  const auto seeds = longrope_seed_factors(base, o);
  const double seed_best = [&] {
    double best = INFINITY;
    for (const auto& f : seeds) best = std::min(best, bowl({f, o.attention_factor, 0}));
    return best;
  }();
  const LongRopeSearchResult r = search_longrope(seeds, bowl, o);
  EXPECT_FALSE(r.stopped_by_budget);
  EXPECT_EQ(r.state.generation, 80);
  EXPECT_LT(r.best().fitness, 0.02 * seed_best);  // within 2 % of the seeds' error
  for (size_t j = 0; j < bowl.target.size(); ++j) EXPECT_NEAR(r.best().factors[j], bowl.target[j], 0.25 * bowl.target[j]) << j;
  EXPECT_NEAR(r.best().attention_factor, 1.15, 0.02);
  for (size_t g = 1; g < r.state.best_by_generation.size(); ++g)
    EXPECT_LE(r.state.best_by_generation[g], r.state.best_by_generation[g - 1]);  // elitist: never worse
  for (const auto& c : r.state.history) EXPECT_TRUE(candidate_is_valid(c, o));
  EXPECT_EQ(r.state.evals, int(r.state.history.size()));
  EXPECT_LE(r.state.evals, o.population + 80 * (o.mutations + o.crossovers));
}

TEST(LongRopeSearch, SameSeedSameSearchAndResumeEqualsUninterrupted) {
  const RopeSpec base = base_spec(8);
  LongRopeSearchOptions o = options_for(8);
  o.iterations = 12;
  const Bowl bowl = known_optimum();
  const auto seeds = longrope_seed_factors(base, o);
  std::vector<LongRopeSearchState> checkpoints;
  const LongRopeSearchResult a = search_longrope(seeds, bowl, o, nullptr, [&](const LongRopeSearchState& s) {
    checkpoints.push_back(s);
  });
  ASSERT_EQ(checkpoints.size(), 13u);  // the initial population, then every generation
  const LongRopeSearchResult b = search_longrope(seeds, bowl, o);
  ASSERT_EQ(a.state.history.size(), b.state.history.size());
  for (size_t i = 0; i < a.state.history.size(); ++i) EXPECT_EQ(a.state.history[i].factors, b.state.history[i].factors);
  // Another seed searches differently.
  LongRopeSearchOptions o2 = o;
  o2.seed = 2;
  const LongRopeSearchResult c = search_longrope(seeds, bowl, o2);
  bool differs = false;
  for (size_t i = 0; i < std::min(a.state.history.size(), c.state.history.size()); ++i)
    differs |= a.state.history[i].factors != c.state.history[i].factors;
  EXPECT_TRUE(differs);
  // Stopped after generation 5 and resumed: the same history, population and best.
  const LongRopeSearchResult resumed = search_longrope(seeds, bowl, o, &checkpoints[5]);
  ASSERT_EQ(resumed.state.history.size(), a.state.history.size());
  for (size_t i = 0; i < a.state.history.size(); ++i) {
    EXPECT_EQ(resumed.state.history[i].factors, a.state.history[i].factors) << i;
    EXPECT_EQ(resumed.state.history[i].fitness, a.state.history[i].fitness) << i;
  }
  EXPECT_EQ(resumed.best().factors, a.best().factors);
  EXPECT_EQ(resumed.state.best_by_generation, a.state.best_by_generation);
}

TEST(LongRopeSearch, ASeedMayStartFromItsOwnAttentionFactor) {
  // --from's earlier result as it is keeps the attention factor it was found (or fine-tuned) with;
  // the other seeds start from the options' value. A seed's own value below 1 is refused.
  LongRopeSearchOptions o = options_for(8);
  o.iterations = 0;
  const auto seeds = longrope_seed_factors(base_spec(8), o);
  o.seed_attention.assign(seeds.size(), NAN);
  o.seed_attention[1] = 1.268;  // NTK's factors with it
  const LongRopeSearchResult r = search_longrope(seeds, known_optimum(), o);
  ASSERT_GE(r.state.history.size(), seeds.size());
  EXPECT_NEAR(r.state.history[0].attention_factor, o.attention_factor, 5e-4);  // on the 0.001 grid
  EXPECT_DOUBLE_EQ(r.state.history[1].attention_factor, 1.268);
  EXPECT_EQ(r.state.history[1].factors, seeds[1]);
  EXPECT_NEAR(r.state.history[2].attention_factor, o.attention_factor, 5e-4);
  o.seed_attention[1] = 0.9;
  EXPECT_THROW(search_longrope(seeds, known_optimum(), o), std::invalid_argument);
}

TEST(LongRopeSearch, BudgetStopsWithTheBestSoFar) {
  LongRopeSearchOptions o = options_for(8);
  o.max_evals = 70;
  const auto seeds = longrope_seed_factors(base_spec(8), o);
  const LongRopeSearchResult r = search_longrope(seeds, known_optimum(), o);
  EXPECT_TRUE(r.stopped_by_budget);
  EXPECT_EQ(r.state.evals, 70);
  EXPECT_LE(r.best().fitness, r.state.history.front().fitness);
  o.max_evals = 0;
  EXPECT_THROW(search_longrope(seeds, known_optimum(), o), std::invalid_argument);
  o.max_evals = 10, o.upper = 0.5;
  EXPECT_THROW(search_longrope(seeds, known_optimum(), o), std::invalid_argument);
}

// The selection re-ranks the top k on the other fitness only: it picks the one that is
// best there (not the search's best), never looks past k, and never picks a failed score.
TEST(LongRopeSearch, SelectionRanksTheTopOnOtherData) {
  std::vector<LongRopeCandidate> pop(5);
  for (size_t i = 0; i < pop.size(); ++i) pop[i].factors = {1.0, double(i + 1)}, pop[i].fitness = 0.1 * double(i);
  // The other data prefers the third candidate; the fifth would be better still, but is past k.
  const std::vector<double> other = {2.0, 1.5, 1.2, NAN, 0.5};
  const auto by_other = [&](const LongRopeCandidate& c) { return other[size_t(c.factors[1]) - 1]; };
  const LongRopeSelection sel = select_longrope(pop, 4, by_other);
  ASSERT_EQ(sel.scores.size(), 4u);
  EXPECT_EQ(sel.chosen, 2u);
  EXPECT_TRUE(std::isinf(sel.scores[3]));
  EXPECT_EQ(select_longrope(pop, 99, by_other).chosen, 4u);
  EXPECT_EQ(select_longrope(pop, 1, by_other).chosen, 0u);
  EXPECT_EQ(select_longrope(pop, 2, [](const LongRopeCandidate&) { return 1.0; }).chosen, 0u);  // ties: the earlier
  EXPECT_THROW(select_longrope({}, 4, by_other), std::invalid_argument);
}

}  // namespace
}  // namespace ropescale
