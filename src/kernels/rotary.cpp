// Validation and the scalar twin of apply_rotary.
#include "ropescale/kernels/rotary.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "ropescale/kernels/convert.h"
#include "rotary_rows.h"

namespace ropescale {

namespace {
void check_tensor(const RotaryTensor& t, const RotaryProblem& p, const char* name, bool optional) {
  if (t.data == nullptr) {
    if (optional) return;
    throw std::invalid_argument(std::string("apply_rotary: ") + name + ".data is null");
  }
  if (t.n_heads < 0) throw std::invalid_argument(std::string("apply_rotary: ") + name + ".n_heads < 0");
  if (t.head_stride < p.head_dim)
    throw std::invalid_argument(std::string("apply_rotary: ") + name + ".head_stride " + std::to_string(t.head_stride) +
                                " < head_dim " + std::to_string(p.head_dim));
  if (p.n_tokens > 1 && t.token_stride < static_cast<int64_t>(t.n_heads) * t.head_stride)
    throw std::invalid_argument(std::string("apply_rotary: ") + name + ".token_stride is smaller than n_heads·head_stride");
}
}  // namespace

void validate(const RotaryProblem& p) {
  if (p.n_tokens < 0) throw std::invalid_argument("apply_rotary: n_tokens < 0");
  if (p.n_tokens == 0) return;
  if (!p.positions) throw std::invalid_argument("apply_rotary: positions is null");
  if (p.rotary_dim < 2 || p.rotary_dim % 2 || p.rotary_dim > p.head_dim)
    throw std::invalid_argument("apply_rotary: rotary_dim " + std::to_string(p.rotary_dim) +
                                " must be even, >= 2 and <= head_dim " + std::to_string(p.head_dim));
  check_tensor(p.q, p, "q", p.q.n_heads == 0);
  check_tensor(p.k, p, "k", p.k.n_heads == 0);
  if (p.q_out.data) {
    check_tensor(p.q_out, p, "q_out", false);
    if (p.q_out.n_heads != p.q.n_heads || p.q_out.dtype != p.q.dtype)
      throw std::invalid_argument("apply_rotary: q_out must match q's head count and dtype");
  }
  if (p.k_out.data) {
    check_tensor(p.k_out, p, "k_out", false);
    if (p.k_out.n_heads != p.k.n_heads || p.k_out.dtype != p.k.dtype)
      throw std::invalid_argument("apply_rotary: k_out must match k's head count and dtype");
  }
  const int pairs = p.rotary_dim / 2;
  const auto& a = p.angles;
  if ((a.table == nullptr) == (a.inv_freq == nullptr))
    throw std::invalid_argument("apply_rotary: set exactly one of angles.table and angles.inv_freq");
  if (a.table && a.table->pairs != pairs)
    throw std::invalid_argument("apply_rotary: the cos/sin table has " + std::to_string(a.table->pairs) +
                                " pairs, rotary_dim/2 = " + std::to_string(pairs));
  if (a.inv_freq && static_cast<int>(a.inv_freq->size()) != pairs)
    throw std::invalid_argument("apply_rotary: inv_freq has " + std::to_string(a.inv_freq->size()) +
                                " entries, rotary_dim/2 = " + std::to_string(pairs));
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    const int64_t pos = p.positions[t];
    if (pos < 0) throw std::invalid_argument("apply_rotary: position " + std::to_string(pos) + " is negative");
    if (a.table && (pos < a.table->first_position || pos >= a.table->first_position + a.table->positions))
      throw std::invalid_argument("apply_rotary: position " + std::to_string(pos) + " is outside the cos/sin table [" +
                                  std::to_string(a.table->first_position) + ", " +
                                  std::to_string(a.table->first_position + a.table->positions) + ")");
  }
}

// ---------------------------------------------------------------- scalar twin
namespace {

void rotate_tensor_scalar(const RotaryProblem& p, const RotaryTensor& in, const RotaryTensor& out_or_null,
                          int64_t t, const detail::AngleRow& row) {
  const RotaryTensor& out = out_or_null.data ? out_or_null : in;
  const int d = p.rotary_dim, half = d / 2;
  for (int h = 0; h < in.n_heads; ++h) {
    const int64_t src = t * in.token_stride + h * in.head_stride;
    const int64_t dst = t * out.token_stride + h * out.head_stride;
    for (int j = 0; j < half; ++j) {
      // Channel indices of pair j in each layout.
      const int i0 = p.layout == PairLayout::HalfSplit ? j : 2 * j;
      const int i1 = p.layout == PairLayout::HalfSplit ? j + half : 2 * j + 1;
      const float x0 = detail::load_scalar(in.data, in.dtype, src + i0);
      const float x1 = detail::load_scalar(in.data, in.dtype, src + i1);
      const float c = row.cos[j], s = row.sin[j];
      detail::store_scalar(out.data, out.dtype, dst + i0, x0 * c - x1 * s);
      detail::store_scalar(out.data, out.dtype, dst + i1, x1 * c + x0 * s);
    }
    if (out.data != in.data)  // the non-rotary tail passes through
      for (int i = d; i < p.head_dim; ++i)
        detail::store_scalar(out.data, out.dtype, dst + i, detail::load_scalar(in.data, in.dtype, src + i));
  }
}

}  // namespace

void apply_rotary_scalar(const RotaryProblem& p) {
  validate(p);
  const int pairs = p.rotary_dim / 2;
  std::vector<float> scratch(2 * pairs);
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    const auto row = detail::angle_row(p.angles, p.positions[t], pairs, scratch.data());
    if (p.q.n_heads) rotate_tensor_scalar(p, p.q, p.q_out, t, row);
    if (p.k.n_heads) rotate_tensor_scalar(p, p.k, p.k_out, t, row);
  }
}

}  // namespace ropescale
