#include "ropescale/rope/alibi.h"

#include <cmath>
#include <stdexcept>

namespace ropescale {

std::vector<double> alibi_slopes(int n_heads, double max_bias) {
  if (n_heads < 1) throw std::invalid_argument("alibi: n_heads must be >= 1");
  if (!std::isfinite(max_bias) || max_bias <= 0) throw std::invalid_argument("alibi: max_bias must be > 0");
  int n0 = 1;  // closest power of two <= n_heads
  while (n0 * 2 <= n_heads) n0 *= 2;
  const double m0 = std::pow(2.0, -max_bias / n0);
  const double m1 = std::pow(2.0, -max_bias / (2.0 * n0));
  std::vector<double> slopes(n_heads);
  for (int h = 0; h < n_heads; ++h)
    slopes[h] = h < n0 ? std::pow(m0, h + 1) : std::pow(m1, 2 * (h - n0) + 1);
  return slopes;
}

}  // namespace ropescale
