// apply_rotary: rotate Q and K in place or out of place for a batch of tokens
// at arbitrary absolute positions — both pair layouts, partial rotary, f32/f16/
// bf16 storage (f32 compute), different Q/K head counts (GQA) in one pass, and
// angles from a cos/sin table or from inv_freq on the fly. The attention factor
// is folded into cos and sin, as the reference implementations do.
//
// For pair j with angle θ = p·inv[j], cos c, sin s (× attention factor):
//   out0 = x0·c − x1·s,   out1 = x1·c + x0·s
// half-split (NeoX, HF rotate_half): (x0, x1) = (x[j], x[j + d/2])
// interleaved (GPT-J, Meta, ggml NORMAL): (x0, x1) = (x[2j], x[2j + 1])
// Channels [rotary_dim, head_dim) pass through untouched.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ropescale/kernels/dtype.h"
#include "ropescale/rope/cos_sin_table.h"
#include "ropescale/rope/rope_spec.h"

namespace ropescale {

// One activation tensor laid out as [token][head][channel]; strides in elements.
struct RotaryTensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  int n_heads = 0;
  int64_t token_stride = 0;  // elements between token rows (≥ n_heads · head_stride)
  int64_t head_stride = 0;   // elements between heads (≥ head_dim)
};

// Where the angles come from. Exactly one of `table` / `inv_freq` is set.
struct RotaryAngles {
  const CosSinTable* table = nullptr;         // rows cover every position used
  const std::vector<double>* inv_freq = nullptr;  // d/2 entries; angles formed in double
  double attention_factor = 1.0;              // on-the-fly path only (a table has it folded in)
};

struct RotaryProblem {
  int64_t n_tokens = 0;
  const int64_t* positions = nullptr;  // n_tokens absolute positions (any order, ≥ 0)
  int head_dim = 0;
  int rotary_dim = 0;                  // even, ≤ head_dim
  PairLayout layout = PairLayout::HalfSplit;
  RotaryTensor q, k;                   // k.n_heads == 0: Q only
  RotaryTensor q_out, k_out;           // data == nullptr: in place
  RotaryAngles angles;
};

// Throws std::invalid_argument naming the field when the problem is malformed
// (null data, strides too small, odd rotary_dim, a position outside the table…).
void validate(const RotaryProblem& p);

// The plain scalar twin: reads like the formula above.
void apply_rotary_scalar(const RotaryProblem& p);

// Optimized: Highway SIMD with runtime dispatch (best target of this CPU), and
// the token range split across `threads` (0 = hardware concurrency) when the
// batch is large enough to pay for it.
void apply_rotary(const RotaryProblem& p, int threads = 0);

// The SIMD target the dispatcher selected on this CPU (e.g. "AVX2").
std::string rotary_simd_target();

}  // namespace ropescale
