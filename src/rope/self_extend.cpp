#include "ropescale/rope/self_extend.h"

#include <string>

namespace ropescale {

void validate(const SelfExtend& se) {
  if (se.group < 1) throw std::invalid_argument("self-extend group " + std::to_string(se.group) + " must be >= 1");
  if (se.window < 0 || (se.group > 1 && se.window < 1))
    throw std::invalid_argument("self-extend window " + std::to_string(se.window) + " must be >= 1 (the neighbours kept at exact positions)");
}

}  // namespace ropescale
