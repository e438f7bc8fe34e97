// −log softmax(row)[token], in double: the one scoring rule of the evaluations.
#pragma once

#include <algorithm>
#include <cmath>

namespace ropescale {

inline double next_token_nll(const float* row, int vocab, int token) {
  const float mx = *std::max_element(row, row + vocab);
  double sum = 0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - mx);
  return std::log(sum) + mx - row[token];
}

}  // namespace ropescale
