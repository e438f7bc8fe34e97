// LongRoPE factor search: an evolutionary search over per-pair rescale factors
// λ_j (θ̂_j = θ_j / λ_j) and the attention factor, the LongRoPE way (Ding et al.
// 2024, Algorithm 1; microsoft/LongRoPE evolution/algorithms/dim_mono.py):
//  - the initial population is seeded from PI (λ = s), NTK (λ_j = s^(2j/(d−2))),
//    YaRN (its per-pair divisors), LongRoPE2-style critical-pair seeds (λ = s′ from
//    a pair on, NTK below it), and any earlier result (progressive extension), the
//    rest mutants of the seeds;
//  - every generation keeps the best `parents`, adds `mutations` mutants of random
//    parents and `crossovers` children of random parent pairs;
//  - a mutation resamples a chosen pair (probability p) uniformly on the step grid
//    between its neighbours, a crossover takes a pair from the second parent with
//    probability p/2 — so every candidate is monotone non-decreasing from high to
//    low frequency, within [lower, upper] and on the grid before it costs an
//    evaluation; a candidate already evaluated is never evaluated again.
// The fitness is a callable (mean NLL at the target length in the CLI), so a
// synthetic one tests the search. The random source is a fixed xoshiro256**
// stream seeded by the caller, so a search is the same on every machine, and a
// checkpoint after each generation (population, history, random state) resumes
// to exactly the uninterrupted result.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "ropescale/rope/rope_spec.h"

namespace ropescale {

struct LongRopeCandidate {
  std::vector<double> factors;    // λ_j, one per rotary pair, non-decreasing, on the grid
  double attention_factor = 1;    // multiplies cos and sin (HF longrope attention_factor)
  double fitness = 0;             // lower is better (NLL, nats per token)
};

struct LongRopeSearchOptions {
  int population = 64, iterations = 40, mutations = 16, crossovers = 16, parents = 32;  // LongRoPE's defaults
  double step = 0.01;                  // the factors' grid
  double mutation_probability = 0.3;   // per pair (crossover: half of it)
  double lower = 1.0, upper = 2.0;     // bounds of every λ_j (the CLI: 1 … 2·s, LongRoPE2's range)
  double attention_factor = 1.0;       // the start value (the CLI: LongRoPE's sqrt(1 + ln s / ln L))
  std::vector<double> seed_attention;  // a seed's own start value, by the seeds' index (absent or NaN: the one above;
                                       // the CLI: --from's result as it is keeps its attention factor)
  bool search_attention = true;        // mutate the attention factor too (± attention_window, grid 0.001, ≥ 1)
  double attention_window = 0.05;
  uint64_t seed = 1;
  int max_evals = 1 << 30;             // budget: fitness evaluations
  double max_seconds = 1e30;           // budget: seconds (this run; a resumed run adds its own)
};

// A small, portable random source (xoshiro256**, seeded by splitmix64).
struct SearchRandom {
  std::array<uint64_t, 4> s{};
  explicit SearchRandom(uint64_t seed = 1);
  uint64_t next();
  double uniform();                 // [0, 1)
  int64_t below(int64_t n);         // [0, n)
};

// Where a search stands after a whole generation: enough to resume it exactly.
struct LongRopeSearchState {
  int generation = 0;                        // generations done (0 = initial population scored)
  std::vector<LongRopeCandidate> population; // scored, best first
  std::vector<LongRopeCandidate> history;    // every evaluation, in order
  std::vector<double> best_by_generation;    // best fitness after each generation
  SearchRandom random;
  int evals = 0;
  double seconds = 0;                        // summed over runs
};

struct LongRopeSearchResult {
  LongRopeSearchState state;   // the final state (best = state.population.front())
  bool stopped_by_budget = false;
  const LongRopeCandidate& best() const { return state.population.front(); }
};

// The seeds for a target factor s = base.factor: PI, NTK, YaRN (the spec's betas), then
// LongRoPE2-style critical-pair seeds (λ = s′ ∈ [s, 2s] from a pair on, NTK-like below),
// then `extra` (an earlier result: progressive extension), each clamped to the bounds,
// put on the grid and made monotone.
std::vector<std::vector<double>> longrope_seed_factors(const RopeSpec& base, const LongRopeSearchOptions& o,
                                                       const std::vector<std::vector<double>>& extra = {});

// The operators, exposed for tests. Both return a candidate that is monotone,
// within the bounds and on the grid (attention factor: ≥ 1, grid 0.001).
LongRopeCandidate mutate_candidate(const LongRopeCandidate& parent, const LongRopeSearchOptions& o, SearchRandom& rng);
LongRopeCandidate cross_candidates(const LongRopeCandidate& a, const LongRopeCandidate& b,
                                   const LongRopeSearchOptions& o, SearchRandom& rng);
// A candidate keeps the constraints: monotone non-decreasing, within [lower, upper], on the grid.
bool candidate_is_valid(const LongRopeCandidate& c, const LongRopeSearchOptions& o);

// sqrt(1 + ln s / ln L): LongRoPE's ("su") attention factor; 1 for s ≤ 1.
double longrope_attention_factor(double factor, int64_t original_max_position);

// The search from `seeds` (each a factor list of the same length; the first is kept as
// given, the population is filled with mutants of the seeds). `checkpoint(state)` after
// each generation; `resume`: a state from a checkpoint of the same search (seeds, options,
// fitness); `progress(state)` after every evaluation. Deterministic for options.seed.
using LongRopeFitness = std::function<double(const LongRopeCandidate&)>;
LongRopeSearchResult search_longrope(const std::vector<std::vector<double>>& seeds, const LongRopeFitness& fitness,
                                     const LongRopeSearchOptions& options,
                                     const LongRopeSearchState* resume = nullptr,
                                     const std::function<void(const LongRopeSearchState&)>& checkpoint = {},
                                     const std::function<void(const LongRopeSearchState&)>& progress = {});

// The final choice on other data (a validation split): the first `k` candidates of a
// scored population (best first) scored again by `select_fitness` — in the CLI, the NLL
// on calibration windows the search never saw — and the best of them by that score. The
// search's fitness differences at the top are smaller than the windows' own noise, so
// ranking on fresh windows is what generalizes (measured: see README, Calibration).
struct LongRopeSelection {
  std::vector<double> scores;  // select_fitness of population[i], i < k
  size_t chosen = 0;           // index into the population: the lowest score (the earlier on ties)
};
LongRopeSelection select_longrope(const std::vector<LongRopeCandidate>& population, int k,
                                  const LongRopeFitness& select_fitness);

// A LongRoPE spec with `base`'s theta, dims, factor and original length, the given
// short and long lists and attention factor; with short_mscale, that factor within the
// original length instead (and long_mscale = attention_factor beyond it).
RopeSpec longrope_spec(const RopeSpec& base, const std::vector<double>& short_factor,
                       const std::vector<double>& long_factor, double attention_factor,
                       std::optional<double> short_mscale = std::nullopt);

}  // namespace ropescale
