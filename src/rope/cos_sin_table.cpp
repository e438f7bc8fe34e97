#include "ropescale/rope/cos_sin_table.h"

#include <cmath>
#include <stdexcept>

namespace ropescale {

CosSinTable build_cos_sin_table(const RopeFrequencies& f, int64_t p0, int64_t p1) {
  if (p0 < 0 || p1 < p0) throw std::invalid_argument("cos/sin table: need 0 <= p0 <= p1");
  CosSinTable t;
  t.first_position = p0;
  t.positions = p1 - p0;
  t.pairs = static_cast<int>(f.inv_freq.size());
  t.cos.resize(static_cast<size_t>(t.positions) * t.pairs);
  t.sin.resize(t.cos.size());
  for (int64_t p = p0; p < p1; ++p) {
    const size_t row = static_cast<size_t>(p - p0) * t.pairs;
    for (int j = 0; j < t.pairs; ++j) {
      const double angle = static_cast<double>(p) * f.inv_freq[j];
      t.cos[row + j] = static_cast<float>(std::cos(angle) * f.attention_factor);
      t.sin[row + j] = static_cast<float>(std::sin(angle) * f.attention_factor);
    }
  }
  return t;
}

}  // namespace ropescale
