// Which tokens of a prompt a regular expression covers: the protected spans of a KV budget
// (`--kv-protect`, e.g. headings or the question), found on the text as the tokens spell it.
#pragma once

#include <regex>
#include <span>
#include <string>
#include <vector>

#include "ropescale/model/session.h"
#include "ropescale/model/tokenizer.h"

namespace ropescale {

// A pattern compiled once (a server's --kv-protect serves every request with it).
class TokenPattern {
 public:
  // ECMAScript syntax; throws std::invalid_argument naming the pattern when it does not compile.
  explicit TokenPattern(const std::string& pattern);
  // The token positions of every token that overlaps a match in the concatenated pieces of `ids`
  // (tok.decode; BOS and EOS spell nothing), as merged spans (merge_spans). Empty matches cover nothing.
  std::vector<PositionSpan> spans(const Tokenizer& tok, std::span<const int> ids) const;

 private:
  std::regex re_;
};

// TokenPattern(pattern).spans(tok, ids), for a pattern used once.
std::vector<PositionSpan> token_spans_matching(const Tokenizer& tok, std::span<const int> ids, const std::string& pattern);

}  // namespace ropescale
