#include "ropescale/eval/effective_context.h"

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

namespace ropescale {

EffectiveContext effective_context(std::vector<LengthScore> points, int64_t trained, const EffectiveContextRule& rule) {
  EffectiveContext e;
  if (points.empty()) {
    e.why = "no lengths tested";
    return e;
  }
  std::sort(points.begin(), points.end(), [](const LengthScore& a, const LengthScore& b) { return a.length < b.length; });
  size_t ref = 0;
  for (size_t i = 0; i < points.size(); ++i)
    if (points[i].length <= trained) ref = i;
  e.reference_length = points[ref].length;
  e.reference = points[ref].score;
  if (!std::isfinite(e.reference)) {
    e.why = "no score at the reference length";
    return e;
  }
  if (rule.higher_is_better && e.reference < rule.reference_bound) {
    e.why = fmt::format("scores {:.2f} at {} tokens (below {:.2f}): the model does not do this task at its trained "
                        "length; see the needle NLL",
                        e.reference, e.reference_length, rule.reference_bound);
    return e;
  }
  if (!rule.higher_is_better && rule.reference_bound > 0 && e.reference > rule.reference_bound) {
    e.why = fmt::format("needle NLL {:.2f} at {} tokens is worse than a uniform guess ({:.2f}): the model does not "
                        "know the answer at its trained length",
                        e.reference, e.reference_length, rule.reference_bound);
    return e;
  }
  e.effective = e.reference_length;
  for (size_t i = ref + 1; i < points.size(); ++i) {
    const double s = points[i].score;
    const bool within = rule.higher_is_better ? s >= e.reference - rule.threshold : s <= e.reference + rule.threshold;
    if (!std::isfinite(s) || !within) break;
    e.effective = points[i].length;
  }
  return e;
}

}  // namespace ropescale
