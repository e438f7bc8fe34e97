#include "ropescale/calibrate/yarn_calibration.h"

#include <cmath>
#include <map>
#include <numbers>
#include <stdexcept>

#include "ropescale/rope/frequencies.h"

namespace ropescale {

namespace {

double beta_at(const RopeSpec& s, double dim) {
  return double(s.original_max_position) / (2.0 * std::numbers::pi * std::pow(s.theta, 2.0 * dim / s.rotary_dim));
}

}  // namespace

std::pair<double, double> yarn_betas_for_range(const RopeSpec& spec, int low, int high) {
  if (!(0 <= low && low < high && high <= spec.pairs()))
    throw std::invalid_argument("yarn range: need 0 ≤ low < high ≤ " + std::to_string(spec.pairs()) + ", got " +
                                std::to_string(low) + ", " + std::to_string(high));
  return {beta_at(spec, low + 0.25), beta_at(spec, high - 0.25)};  // beta_fast > beta_slow even when high = low + 1
}

int theoretical_critical_pair(const RopeSpec& spec) {
  const double L = double(spec.original_max_position);
  return int(std::ceil(spec.pairs() * std::log(L / (2.0 * std::numbers::pi)) / std::log(spec.theta)));
}

YarnSearchResult search_yarn(const RopeSpec& base, const YarnFitness& fitness, const YarnSearchOptions& o,
                             const std::function<void(int, int, const YarnCandidate&)>& progress) {
  if (base.type != RopeType::Yarn) throw std::invalid_argument("search_yarn: the base setting must be YaRN");
  const auto t0 = std::chrono::steady_clock::now();
  const double default_factor = yarn_mscale(base.factor);
  YarnSearchResult r;
  std::map<std::tuple<int, int, int64_t>, double> seen;  // (low, high, factor in 1e-6) → fitness
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto out_of_budget = [&] { return r.evals >= o.max_evals || elapsed() >= o.max_seconds; };
  // Evaluates one candidate (once); false when the budget is spent.
  auto evaluate = [&](YarnCandidate c) {
    const auto key = std::make_tuple(c.low, c.high, int64_t(std::llround(c.attention_factor * 1e6)));
    if (seen.count(key)) return true;
    if (out_of_budget()) {
      r.stopped_by_budget = true;
      return false;
    }
    RopeSpec s = base;
    s.truncate = true;
    s.beta_fast = c.beta_fast;
    s.beta_slow = c.beta_slow;
    s.attention_factor = c.attention_factor;
    s.mscale.reset();
    s.mscale_all_dim.reset();
    c.fitness = fitness(s);
    seen[key] = c.fitness;
    ++r.evals;
    r.history.push_back(c);
    if (r.evals == 1 || c.fitness < r.best.fitness) r.best = c;
    if (progress) progress(r.evals, o.max_evals, r.best);
    return true;
  };
  auto candidate = [&](int low, int high, double factor) {
    YarnCandidate c;
    c.low = low, c.high = high, c.attention_factor = factor;
    std::tie(c.beta_fast, c.beta_slow) = yarn_betas_for_range(base, low, high);
    return c;
  };

  // 0. YaRN as published, for reference (its own betas, not the nearest whole-pair ones).
  {
    RopeSpec s = base;
    s.truncate = true;
    const YarnRange range = yarn_correction_range(s);
    YarnCandidate c;
    c.low = int(range.low), c.high = int(range.high);
    c.beta_fast = base.beta_fast, c.beta_slow = base.beta_slow, c.attention_factor = default_factor;
    evaluate(c);
    r.yarn_default = r.history.front();
  }
  // 1. Every ramp (low < high) at the default attention factor.
  const int P = base.pairs();
  for (int low = 0; low < P; ++low)
    for (int high = low + 1; high <= P; ++high)
      if (!evaluate(candidate(low, high, default_factor))) goto done;
  // 2. The attention factor at the best ramp; 3. the ramp's neighbours at that factor; repeat once.
  for (int round = 0; round < 2; ++round) {
    const YarnCandidate at = r.best;
    for (double scale : o.attention_scales)
      if (!evaluate(candidate(at.low, at.high, default_factor * scale))) goto done;
    const YarnCandidate b = r.best;
    for (int dl = -2; dl <= 2; ++dl)
      for (int dh = -2; dh <= 2; ++dh) {
        const int low = b.low + dl, high = b.high + dh;
        if (low < 0 || high > P || low >= high) continue;
        if (!evaluate(candidate(low, high, b.attention_factor))) goto done;
      }
  }
done:
  r.seconds = elapsed();
  return r;
}

}  // namespace ropescale
