#include "ropescale/calibrate/longrope_search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <optional>
#include <set>
#include <stdexcept>

#include "ropescale/rope/frequencies.h"

namespace ropescale {

// ---- the random source ----------------------------------------------------------

SearchRandom::SearchRandom(uint64_t seed) {
  for (auto& w : s) {  // splitmix64
    seed += 0x9E3779B97F4A7C15ull;
    uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    w = z ^ (z >> 31);
  }
}

uint64_t SearchRandom::next() {  // xoshiro256**
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double SearchRandom::uniform() { return double(next() >> 11) * 0x1.0p-53; }

int64_t SearchRandom::below(int64_t n) { return n <= 1 ? 0 : int64_t(next() % uint64_t(n)); }

namespace {

constexpr double kAttentionStep = 0.001;

int64_t grid_index(double x, double step) { return std::llround(x / step); }

// Grid point k: k / (1/step) when 1/step is whole (so 2.3 prints as 2.3, not 2.3000000000000003).
double grid_value(int64_t k, double step) {
  const double inv = 1.0 / step;
  return std::abs(inv - std::round(inv)) < 1e-9 ? double(k) / std::round(inv) : double(k) * step;
}

// Uniform on the grid points of [lo, hi] (lo itself when the interval holds none).
double grid_uniform(double lo, double hi, double step, SearchRandom& rng) {
  const int64_t a = int64_t(std::ceil(lo / step - 1e-9)), b = int64_t(std::floor(hi / step + 1e-9));
  if (b < a) return lo;
  return grid_value(a + rng.below(b - a + 1), step);
}

// Clamped to the bounds, on the grid, monotone (running maximum).
std::vector<double> normalized(std::vector<double> f, const LongRopeSearchOptions& o) {
  double floor_value = o.lower;
  for (double& x : f) {
    x = std::clamp(x, o.lower, o.upper);
    x = grid_value(grid_index(x, o.step), o.step);
    x = std::clamp(x, floor_value, o.upper);
    floor_value = x;
  }
  return f;
}

using CandidateKey = std::vector<int64_t>;
CandidateKey key_of(const LongRopeCandidate& c, double step) {
  CandidateKey k;
  k.reserve(c.factors.size() + 1);
  for (double x : c.factors) k.push_back(grid_index(x, step));
  k.push_back(grid_index(c.attention_factor, kAttentionStep));
  return k;
}

double attention_on_grid(double a) { return std::max(1.0, grid_value(grid_index(a, kAttentionStep), kAttentionStep)); }

void check_options(const LongRopeSearchOptions& o) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("longrope search: " + what); };
  if (!(o.step > 0)) bad("the step must be > 0");
  if (!(o.lower > 0 && o.lower < o.upper)) bad("the bounds need 0 < lower < upper");
  if (o.population < 1 || o.parents < 1 || o.iterations < 0 || o.mutations < 0 || o.crossovers < 0)
    bad("population and parents must be ≥ 1, iterations, mutations and crossovers ≥ 0");
  if (!(o.mutation_probability > 0 && o.mutation_probability <= 1)) bad("the mutation probability must be in (0, 1]");
  if (!(o.attention_factor >= 1)) bad("the attention factor must be ≥ 1");
  for (double a : o.seed_attention)
    if (!std::isnan(a) && !(a >= 1)) bad("a seed's attention factor must be ≥ 1");
}

}  // namespace

// ---- the operators ------------------------------------------------------------

bool candidate_is_valid(const LongRopeCandidate& c, const LongRopeSearchOptions& o) {
  double prev = o.lower;
  for (double x : c.factors) {
    if (!(x >= prev - 1e-12 && x <= o.upper + 1e-12)) return false;
    if (std::abs(x / o.step - double(grid_index(x, o.step))) > 1e-6) return false;
    prev = x;
  }
  return c.attention_factor >= 1 &&
         std::abs(c.attention_factor / kAttentionStep - double(grid_index(c.attention_factor, kAttentionStep))) < 1e-6;
}

LongRopeCandidate mutate_candidate(const LongRopeCandidate& parent, const LongRopeSearchOptions& o, SearchRandom& rng) {
  LongRopeCandidate c = parent;
  auto& f = c.factors;
  const size_t n = f.size();
  for (size_t i = 0; i < n; ++i) {
    if (rng.uniform() >= o.mutation_probability) continue;
    const double lo = i == 0 ? o.lower : f[i - 1];
    const double hi = i + 1 == n ? o.upper : f[i + 1];
    f[i] = grid_uniform(lo, hi, o.step, rng);
  }
  if (o.search_attention && rng.uniform() < o.mutation_probability)
    c.attention_factor = attention_on_grid(c.attention_factor +
                                           grid_uniform(-o.attention_window, o.attention_window, kAttentionStep, rng));
  c.fitness = 0;
  return c;
}

LongRopeCandidate cross_candidates(const LongRopeCandidate& a, const LongRopeCandidate& b,
                                   const LongRopeSearchOptions& o, SearchRandom& rng) {
  LongRopeCandidate c = a;
  for (size_t i = 0; i < c.factors.size(); ++i)
    if (rng.uniform() < o.mutation_probability * 0.5) c.factors[i] = b.factors[i];
  if (o.search_attention && rng.uniform() < 0.5) c.attention_factor = b.attention_factor;
  c.fitness = 0;
  return c;
}

double longrope_attention_factor(double factor, int64_t original_max_position) {
  if (factor <= 1 || original_max_position <= 1) return 1.0;
  return std::sqrt(1.0 + std::log(factor) / std::log(double(original_max_position)));
}

RopeSpec longrope_spec(const RopeSpec& base, const std::vector<double>& short_factor,
                       const std::vector<double>& long_factor, double attention_factor, std::optional<double> short_mscale) {
  RopeSpec s;
  s.type = RopeType::LongRope;
  s.theta = base.theta;
  s.head_dim = base.head_dim;
  s.rotary_dim = base.rotary_dim;
  s.layout = base.layout;
  s.convention = base.convention;
  s.factor = base.factor;
  s.original_max_position = base.original_max_position;
  s.max_position = base.max_position;
  s.short_factor = short_factor;
  s.long_factor = long_factor;
  s.attention_factor = attention_factor;
  if (short_mscale) s.short_mscale = short_mscale, s.long_mscale = attention_factor;
  return s;
}

// ---- the seeds ------------------------------------------------------------------

std::vector<std::vector<double>> longrope_seed_factors(const RopeSpec& base, const LongRopeSearchOptions& o,
                                                       const std::vector<std::vector<double>>& extra) {
  const int P = base.pairs(), d = base.rotary_dim;
  const double s = base.factor;
  if (P < 1 || !(s > 1)) throw std::invalid_argument("longrope seeds: need rotary pairs and a factor > 1");
  std::vector<std::vector<double>> seeds;
  seeds.emplace_back(size_t(P), s);  // PI
  std::vector<double> ntk(static_cast<size_t>(P));
  for (int j = 0; j < P; ++j) ntk[size_t(j)] = d > 2 ? std::pow(s, 2.0 * j / (d - 2)) : s;
  seeds.push_back(ntk);
  RopeSpec yarn = base;  // YaRN with the base's betas (32/1 unless the base is a YaRN spec that says otherwise)
  if (base.type != RopeType::Yarn) yarn.beta_fast = 32, yarn.beta_slow = 1;
  yarn.type = RopeType::Yarn;
  yarn.truncate = true;
  seeds.push_back(divisors_against_default(yarn, compute_frequencies(yarn)));
  // LongRoPE2's initialisation: λ = s from a critical pair r on, NTK-like below it (λ_j = s^(j/r)),
  // for r from the pair with ten periods in L up to the theoretical critical pair.
  const double L = double(base.original_max_position);
  auto pair_of_period = [&](double period) {
    return (d / 2.0) * std::log(period / (2 * std::numbers::pi)) / std::log(base.theta);
  };
  const int r_hi = P > 1 ? std::clamp(int(std::ceil(pair_of_period(L))), 1, P - 1) : 0;
  const int r_lo = P > 1 ? std::clamp(int(std::floor(pair_of_period(L / 10))), 1, r_hi) : 1;  // P = 1: none
  for (int r = r_lo; r <= r_hi; ++r) {
    std::vector<double> f(static_cast<size_t>(P));
    for (int j = 0; j < P; ++j) f[size_t(j)] = j >= r ? s : std::pow(s, double(j) / r);
    seeds.push_back(f);
  }
  for (const auto& e : extra) {
    if (int(e.size()) != P)
      throw std::invalid_argument("longrope seeds: an earlier result has " + std::to_string(e.size()) +
                                  " factors, the model " + std::to_string(P) + " rotary pairs");
    seeds.push_back(e);
  }
  for (auto& f : seeds) f = normalized(f, o);
  return seeds;
}

// ---- the search -----------------------------------------------------------------

LongRopeSearchResult search_longrope(const std::vector<std::vector<double>>& seeds, const LongRopeFitness& fitness,
                                     const LongRopeSearchOptions& o, const LongRopeSearchState* resume,
                                     const std::function<void(const LongRopeSearchState&)>& checkpoint,
                                     const std::function<void(const LongRopeSearchState&)>& progress) {
  check_options(o);
  if (seeds.empty() || seeds.front().empty()) throw std::invalid_argument("longrope search: no seeds");
  const auto t0 = std::chrono::steady_clock::now();
  LongRopeSearchResult r;
  LongRopeSearchState& st = r.state;
  const double seconds_before = resume ? resume->seconds : 0.0;
  if (resume) st = *resume;
  else st.random = SearchRandom(o.seed);
  std::set<CandidateKey> seen;
  for (const auto& c : st.history) seen.insert(key_of(c, o.step));
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto out_of_budget = [&] { return st.evals >= o.max_evals || elapsed() >= o.max_seconds; };
  auto by_fitness = [](const LongRopeCandidate& a, const LongRopeCandidate& b) {
    const double fa = std::isnan(a.fitness) ? INFINITY : a.fitness, fb = std::isnan(b.fitness) ? INFINITY : b.fitness;
    return fa < fb;
  };
  // Scores the new candidates in order; false when the budget stopped it (the scored ones are kept).
  auto score = [&](std::vector<LongRopeCandidate>& fresh, std::vector<LongRopeCandidate>& into) {
    for (auto& c : fresh) {
      if (out_of_budget()) {
        r.stopped_by_budget = true;
        return false;
      }
      c.fitness = fitness(c);
      ++st.evals;
      st.seconds = seconds_before + elapsed();
      st.history.push_back(c);
      into.push_back(c);
      if (progress) {
        LongRopeSearchState view;  // the progress callback sees counts and the best so far, cheaply
        view.generation = st.generation, view.evals = st.evals, view.seconds = st.seconds;
        view.population = {*std::min_element(into.begin(), into.end(), by_fitness)};
        if (!st.population.empty() && by_fitness(st.population.front(), view.population.front()))
          view.population = {st.population.front()};
        progress(view);
      }
    }
    return true;
  };
  // A new valid candidate from `make`, retried until it is valid (a crossover may
  // break monotonicity) and unseen (nullopt after `tries`).
  auto unseen = [&](const std::function<LongRopeCandidate()>& make, int tries) -> std::optional<LongRopeCandidate> {
    for (int t = 0; t < tries; ++t) {
      LongRopeCandidate c = make();
      if (candidate_is_valid(c, o) && seen.insert(key_of(c, o.step)).second) return c;
    }
    return std::nullopt;
  };
  auto finish_generation = [&](std::vector<LongRopeCandidate> pool) {
    std::stable_sort(pool.begin(), pool.end(), by_fitness);
    st.population = std::move(pool);
    st.best_by_generation.push_back(st.population.front().fitness);
    st.seconds = seconds_before + elapsed();
  };

  if (!resume) {
    std::vector<LongRopeCandidate> fresh;
    std::vector<LongRopeCandidate> seed_candidates;
    for (size_t i = 0; i < seeds.size(); ++i) {
      const auto& f = seeds[i];
      LongRopeCandidate c;
      c.factors = normalized(f, o);
      const bool own = i < o.seed_attention.size() && !std::isnan(o.seed_attention[i]);
      c.attention_factor = attention_on_grid(own ? o.seed_attention[i] : o.attention_factor);
      if (c.factors.size() != seeds.front().size()) throw std::invalid_argument("longrope search: seeds differ in length");
      seed_candidates.push_back(c);
      if (seen.insert(key_of(c, o.step)).second && int(fresh.size()) < o.population) fresh.push_back(c);
    }
    while (int(fresh.size()) < o.population) {
      const auto& parent = seed_candidates[size_t(st.random.below(int64_t(seed_candidates.size())))];
      auto c = unseen([&] { return mutate_candidate(parent, o, st.random); }, 100);
      if (!c) break;
      fresh.push_back(*c);
    }
    std::vector<LongRopeCandidate> scored;
    const bool whole = score(fresh, scored);
    if (scored.empty()) throw std::invalid_argument("longrope search: the budget allows no evaluation");
    finish_generation(std::move(scored));
    if (!whole) return r;
    if (checkpoint) checkpoint(st);
  }
  while (st.generation < o.iterations) {
    std::vector<LongRopeCandidate> parents(st.population.begin(),
                                           st.population.begin() + std::min<size_t>(st.population.size(), size_t(o.parents)));
    auto pick = [&]() -> const LongRopeCandidate& { return parents[size_t(st.random.below(int64_t(parents.size())))]; };
    std::vector<LongRopeCandidate> fresh;
    for (int i = 0; i < o.mutations; ++i)
      if (auto c = unseen([&] { return mutate_candidate(pick(), o, st.random); }, 20)) fresh.push_back(*c);
    for (int i = 0; i < o.crossovers; ++i) {
      auto c = unseen([&] {
        const auto& a = pick();
        const auto& b = pick();
        return cross_candidates(a, b, o, st.random);
      }, 20);
      if (!c) c = unseen([&] { return mutate_candidate(pick(), o, st.random); }, 20);  // LongRoPE's fallback
      if (c) fresh.push_back(*c);
    }
    std::vector<LongRopeCandidate> pool = parents;
    const bool whole = score(fresh, pool);
    ++st.generation;
    finish_generation(std::move(pool));
    if (!whole) return r;
    if (checkpoint) checkpoint(st);
  }
  return r;
}

LongRopeSelection select_longrope(const std::vector<LongRopeCandidate>& population, int k,
                                  const LongRopeFitness& select_fitness) {
  if (population.empty() || k < 1) throw std::invalid_argument("longrope selection: no candidate to choose from");
  LongRopeSelection sel;
  const size_t n = std::min(population.size(), size_t(k));
  for (size_t i = 0; i < n; ++i) {
    const double v = select_fitness(population[i]);
    sel.scores.push_back(std::isnan(v) ? INFINITY : v);  // a failed evaluation is never chosen
    if (sel.scores[i] < sel.scores[sel.chosen]) sel.chosen = i;
  }
  return sel;
}

}  // namespace ropescale
