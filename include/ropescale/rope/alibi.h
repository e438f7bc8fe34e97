// ALiBi slopes (Press et al. 2022) for models that use linear attention biases
// instead of RoPE (BLOOM, MPT, Falcon-RW). Pure math.
#pragma once

#include <vector>

namespace ropescale {

// Slopes for `n_heads` heads with maximum bias `max_bias` (8 in the paper and
// BLOOM/MPT). For n a power of two: m_h = 2^(−max_bias·(h+1)/n), h = 0 … n−1.
// Otherwise the closest smaller power of two n0 gets those slopes and the
// remaining heads take the odd-indexed slopes of the 2·n0 sequence (as BLOOM,
// MPT and ggml do). Throws std::invalid_argument for n_heads < 1 or a
// non-finite/non-positive max_bias.
std::vector<double> alibi_slopes(int n_heads, double max_bias = 8.0);

}  // namespace ropescale
