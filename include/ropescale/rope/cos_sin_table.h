// cos/sin tables for a range of positions with the attention factor folded in,
// as the reference implementations build them (rope-reference.md §1.5).
#pragma once

#include <cstdint>
#include <vector>

#include "ropescale/rope/frequencies.h"

namespace ropescale {

// Row-major [positions × pairs]; row r is position p0 + r, column j is pair j.
struct CosSinTable {
  int64_t first_position = 0;
  int64_t positions = 0;
  int pairs = 0;
  std::vector<float> cos;  // cos(p·inv[j]) · attention_factor
  std::vector<float> sin;  // sin(p·inv[j]) · attention_factor

  float cos_at(int64_t p, int j) const { return cos[(p - first_position) * pairs + j]; }
  float sin_at(int64_t p, int j) const { return sin[(p - first_position) * pairs + j]; }
};

// Positions [p0, p1). Angles are formed in double (p · inv[j]) and rounded once
// to float at the end. Throws std::invalid_argument if p0 < 0 or p1 < p0.
CosSinTable build_cos_sin_table(const RopeFrequencies& freqs, int64_t p0, int64_t p1);

}  // namespace ropescale
