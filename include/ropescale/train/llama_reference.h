// The double-precision scalar twin of the training forward: plain loops that
// read like the formulas, for finite-difference gradient checks.
#pragma once

#include <span>

#include "ropescale/model/llama_model.h"
#include "ropescale/rope/rope_spec.h"

namespace ropescale {

// Mean next-token cross-entropy of tokens[1 … n] given tokens[0 … n−1], every
// step in double (RoPE angles p · inv_freq in double, attention factor applied
// to cos and sin as the runtime does).
double reference_llama_loss(const LlamaModel& m, const RopeSpec& rope, std::span<const int> tokens);

}  // namespace ropescale
