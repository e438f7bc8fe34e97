#include "ropescale/model/token_spans.h"

#include <algorithm>
#include <regex>
#include <stdexcept>

namespace ropescale {

TokenPattern::TokenPattern(const std::string& pattern) {
  try {
    re_.assign(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw std::invalid_argument("protected-span pattern '" + pattern + "' does not compile: " + e.what());
  }
}

std::vector<PositionSpan> token_spans_matching(const Tokenizer& tok, std::span<const int> ids, const std::string& pattern) {
  return TokenPattern(pattern).spans(tok, ids);
}

std::vector<PositionSpan> TokenPattern::spans(const Tokenizer& tok, std::span<const int> ids) const {
  // The text and where each token's piece starts in it (starts[i + 1] = its end).
  std::string text;
  std::vector<size_t> starts{0};
  int previous = -1;
  for (int id : ids) {
    if (id != tok.bos() && id != tok.eos()) text += tok.decode(previous, id);
    starts.push_back(text.size());
    previous = id;
  }
  std::vector<PositionSpan> spans;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re_); it != std::sregex_iterator(); ++it) {
    const size_t b = size_t(it->position()), e = b + size_t(it->length());
    if (e == b) continue;
    // The first token whose piece ends after b, through the last one starting before e.
    const auto first = std::upper_bound(starts.begin() + 1, starts.end(), b) - (starts.begin() + 1);
    const auto last = std::lower_bound(starts.begin(), starts.end() - 1, e) - starts.begin();
    if (first < last) spans.push_back({int64_t(first), int64_t(last)});
  }
  return merge_spans(std::move(spans));  // two matches in one token cover it once
}

}  // namespace ropescale
