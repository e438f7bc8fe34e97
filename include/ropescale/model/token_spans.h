// Which tokens of a prompt a regular expression covers: the protected spans of a KV budget
// (`--kv-protect`, e.g. headings or the question), found on the text as the tokens spell it.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "ropescale/model/session.h"
#include "ropescale/model/tokenizer.h"

namespace ropescale {

// The token positions [begin, end) of every token that overlaps a match of `pattern` (ECMAScript
// syntax) in the concatenated pieces of `ids` (tok.decode; BOS and EOS spell nothing). Empty matches
// cover nothing. Throws std::invalid_argument naming the pattern when it does not compile.
std::vector<PositionSpan> token_spans_matching(const Tokenizer& tok, std::span<const int> ids, const std::string& pattern);

}  // namespace ropescale
