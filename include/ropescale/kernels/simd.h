// Which SIMD target the kernels run on. Each kernel file is compiled for several
// targets (Highway) and the best one this CPU supports is chosen at run time;
// limit_simd keeps the kernels at a lesser one, so that one machine can measure
// what an older CPU (AVX2 without AVX-512, SSE4, none) would get.
#pragma once

#include <string>
#include <vector>

namespace ropescale {

// The targets this build compiled and this CPU runs, best first, as lower-case
// names ("avx3", "avx2", "sse4", "ssse3", "emu128" …).
std::vector<std::string> simd_targets();

// From now on, every kernel runs on target `name` (one of simd_targets(), any
// case) or, where a kernel was not compiled for it, the best lesser one. Throws
// std::invalid_argument naming the available targets.
void limit_simd(const std::string& name);

}  // namespace ropescale
