// Self-Extend (Jin et al. 2024, "LLM Maybe LongLM"; llama.cpp --grp-attn-n / --grp-attn-w):
// training-free context extension by positions alone. A query at position p attends
//  - to keys k with p − k < W (its neighbours) at their exact positions: q at p, k at k;
//  - to farther keys at grouped positions: k at ⌊k/G⌋, q at ⌊p/G⌋ + W − ⌊W/G⌋ — the shift
//    that makes a grouped distance continue the neighbours' (p − k = W gives about W).
// The largest distance the model then sees is about W + (p − W)/G, so a model trained at L
// reaches roughly (L − W)·G + W tokens. G = 1 is plain RoPE.
#pragma once

#include <cstdint>
#include <stdexcept>

namespace ropescale {

struct SelfExtend {
  int64_t group = 1;   // G ≥ 1
  int64_t window = 0;  // W: neighbours keep exact positions; 0 = off (needed when group > 1)
  // On with a window (G = 1 runs the two attentions and equals plain RoPE up to rounding).
  bool enabled() const { return window > 0; }
};

// Throws std::invalid_argument naming the parameter: group < 1, window < 0, or group > 1 without a window.
void validate(const SelfExtend& se);

// Whether key k is a neighbour of the query at p (exact positions): p − k < W.
inline bool self_extend_neighbour(const SelfExtend& se, int64_t p, int64_t k) { return !se.enabled() || p - k < se.window; }
// The grouped positions of a far key and of the query that attends to it.
inline int64_t self_extend_key_position(const SelfExtend& se, int64_t k) { return k / se.group; }
inline int64_t self_extend_query_position(const SelfExtend& se, int64_t p) {
  return p / se.group + se.window - se.window / se.group;
}
// The relative position (query − key) the model sees for the pair (p, k), k ≤ p.
inline int64_t self_extend_distance(const SelfExtend& se, int64_t p, int64_t k) {
  return self_extend_neighbour(se, p, k) ? p - k : self_extend_query_position(se, p) - self_extend_key_position(se, k);
}

}  // namespace ropescale
