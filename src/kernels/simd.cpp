// Highway's target bits order the targets: a lower bit is a better target, and
// the dispatcher takes the lowest enabled one. Limiting to a target disables
// every bit below its own.
#include "ropescale/kernels/simd.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "hwy/targets.h"

namespace ropescale {
namespace {

int64_t disabled_targets = 0;  // what limit_simd last disabled

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Every target the CPU runs and this build compiled, whatever limit is in force, best first.
std::vector<int64_t> all_targets() {
  hwy::DisableTargets(0);
  std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  hwy::DisableTargets(disabled_targets);
  return targets;
}

}  // namespace

std::vector<std::string> simd_targets() {
  std::vector<std::string> names;
  for (const int64_t t : all_targets()) names.push_back(lower(hwy::TargetName(t)));
  return names;
}

void limit_simd(const std::string& name) {
  std::string known;
  for (const int64_t t : all_targets()) {
    const std::string n = lower(hwy::TargetName(t));
    if (n == lower(name)) {
      disabled_targets = t - 1;  // every better target
      hwy::DisableTargets(disabled_targets);
      return;
    }
    known += (known.empty() ? "" : ", ") + n;
  }
  throw std::invalid_argument("'" + name + "' is not a SIMD target this build runs on this CPU (available: " + known + ")");
}

}  // namespace ropescale
