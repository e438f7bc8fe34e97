#include "ropescale/model/token_spans.h"

#include <gtest/gtest.h>

namespace ropescale {
namespace {

TEST(TokenSpans, CoverEveryTokenAMatchOverlaps) {
  // Pieces: 3 " hello", 4 " world", 5 "!", 6 "## Intro" (a heading), and BOS 1 spelling nothing.
  const auto tok = Llama2cTokenizer::from_pieces({"<unk>", "<s>", "</s>", " hello", " world", "!", "## Intro"}, {0, 0, 0, -1, -1, -1, -1});
  const std::vector<int> ids = {1, 6, 3, 4, 5, 3, 5};  // "## Intro hello world! hello!"
  // A match inside one piece, one across two pieces, one per occurrence.
  EXPECT_EQ(token_spans_matching(tok, ids, "Intro"), (std::vector<PositionSpan>{{1, 2}}));
  EXPECT_EQ(token_spans_matching(tok, ids, "lo wo"), (std::vector<PositionSpan>{{2, 4}}));
  EXPECT_EQ(token_spans_matching(tok, ids, "hello!"), (std::vector<PositionSpan>{{5, 7}}));
  EXPECT_EQ(token_spans_matching(tok, ids, "h[a-z]+"), (std::vector<PositionSpan>{{2, 3}, {5, 6}}));
  EXPECT_EQ(token_spans_matching(tok, ids, "^## [^\\n]*"), (std::vector<PositionSpan>{{1, 7}}));  // a heading to the line's end
  EXPECT_TRUE(token_spans_matching(tok, ids, "x*").empty());  // empty matches cover nothing
  EXPECT_TRUE(token_spans_matching(tok, ids, "absent").empty());
  // Two matches inside one piece, and matches in touching pieces: merged spans, each token once.
  EXPECT_EQ(token_spans_matching(tok, ids, "In|tro"), (std::vector<PositionSpan>{{1, 2}}));
  EXPECT_EQ(token_spans_matching(tok, ids, "o|!"), (std::vector<PositionSpan>{{1, 7}}));  // six touching tokens
  const TokenPattern compiled("h[a-z]+");  // compiled once, used on two prompts
  EXPECT_EQ(compiled.spans(tok, ids), (std::vector<PositionSpan>{{2, 3}, {5, 6}}));
  EXPECT_EQ(compiled.spans(tok, std::vector<int>{3, 3}), (std::vector<PositionSpan>{{0, 2}}));
  EXPECT_EQ(covered_positions(merge_spans({{4, 6}, {0, 2}, {1, 3}, {6, 6}})), 5);
  try {
    token_spans_matching(tok, ids, "([unclosed");
    FAIL() << "a pattern that does not compile must throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'([unclosed'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ropescale
