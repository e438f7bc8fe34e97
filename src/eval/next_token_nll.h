// −log softmax(row)[token]: the one scoring rule of the evaluations. The
// exponentials in float (SIMD, a few ulp), their sum and the log in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "ropescale/kernels/convert.h"

namespace ropescale {

inline double next_token_nll(const float* row, int vocab, int token) {
  const float mx = *std::max_element(row, row + vocab);
  thread_local std::vector<float> e;
  e.assign(row, row + vocab);
  exp_shifted(e.data(), e.size(), mx);
  double sum = 0;
  for (float x : e) sum += x;
  return std::log(sum) + mx - row[token];
}

}  // namespace ropescale
