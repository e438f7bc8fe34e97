// SoftmaxExp: e^x for softmax arguments x ≤ 0 (a score minus its maximum),
// per Highway target. Highway's Exp reduction (Cody–Waite, ln 2 in two parts)
// and degree-5 polynomial — the same accuracy, a few ulp — without its
// general-range handling: about 16 instructions instead of 24, on the hot
// path of small heads. Arguments below −87 (masked keys, empty rows) give
// exactly 0. Used by the attention kernel and exp_shifted (convert.h), whose
// test compares it with std::exp.
//
// Per-target include guard, the Highway "-inl.h" convention: included from
// files that foreach_target re-includes once per target.
#if defined(ROPESCALE_SOFTMAX_EXP_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ROPESCALE_SOFTMAX_EXP_INL_H_
#undef ROPESCALE_SOFTMAX_EXP_INL_H_
#else
#define ROPESCALE_SOFTMAX_EXP_INL_H_
#endif

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace ropescale {
namespace HWY_NAMESPACE {
namespace softmax {
namespace hn = hwy::HWY_NAMESPACE;

template <class D, class V>
HWY_INLINE V SoftmaxExp(D d, V x) {
  const hn::RebindToSigned<D> di;
  const auto lower = hn::Set(d, -87.0f);
  const auto underflow = hn::Lt(x, lower);
  x = hn::Max(x, lower);
  // t = x/ln2 + 1.5·2²³: the addition rounds x/ln2 to the integer j, held in t's low mantissa bits.
  const auto shifter = hn::Set(d, 12582912.0f);
  const auto t = hn::MulAdd(x, hn::Set(d, 1.44269504088896341f), shifter);
  const auto j = hn::Sub(t, shifter);
  auto r = hn::MulAdd(j, hn::Set(d, -0.693145751953125f), x);  // r = x − j·ln2 in two parts, |r| ≤ ln2/2
  r = hn::MulAdd(j, hn::Set(d, -1.428606765330187045e-6f), r);
  auto q = hn::Set(d, 0.000198527617612853646278381f);
  q = hn::MulAdd(q, r, hn::Set(d, 0.00139304355252534151077271f));
  q = hn::MulAdd(q, r, hn::Set(d, 0.00833336077630519866943359f));
  q = hn::MulAdd(q, r, hn::Set(d, 0.0416664853692054748535156f));
  q = hn::MulAdd(q, r, hn::Set(d, 0.166666671633720397949219f));
  q = hn::MulAdd(q, r, hn::Set(d, 0.5f));
  const auto e_r = hn::Add(hn::MulAdd(q, hn::Mul(r, r), r), hn::Set(d, 1.0f));  // e^r
  // × 2^j: add j to the exponent field (j ≥ −126 after the clamp, so the result stays normal).
  const auto scaled = hn::BitCast(d, hn::Add(hn::BitCast(di, e_r), hn::ShiftLeft<23>(hn::BitCast(di, t))));
  return hn::IfThenZeroElse(underflow, scaled);
}

}  // namespace softmax
}  // namespace HWY_NAMESPACE
}  // namespace ropescale
HWY_AFTER_NAMESPACE();

#endif  // ROPESCALE_SOFTMAX_EXP_INL_H_
