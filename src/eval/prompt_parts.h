// What the retrieval prompts (passkey, the RULER-style tasks) are built from:
// a haystack of filler tokens, needles placed in it at depths, and a question
// whose candidate answers are cut from it by the tokenizer. Internal to eval.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ropescale/model/tokenizer.h"

namespace ropescale::prompt_parts {

// The filler: whole sentences of the built-in text, repeated while they fit
// (so no sentence is cut and a prompt may end up to one sentence short of its
// length), or exactly `n` tokens of a haystack file (repeated if it is short).
// Needles go at the sentence boundary nearest their depth.
struct Filler {
  std::vector<std::vector<int>> sentences;  // built-in
  std::vector<int> haystack;                // from a file
  struct Text {
    std::vector<int> ids;
    std::vector<int64_t> boundaries;  // token offsets where a needle may go
  };

  // From the built-in sentences (haystack_text empty) or enough of a text for
  // prompts of up to `longest` tokens (≥ 1 byte per token). Throws std::invalid_argument.
  static Filler make(const Tokenizer& tok, const std::vector<std::string>& sentences, const std::string& haystack_text,
                     int64_t longest) {
    Filler f;
    if (haystack_text.empty()) {
      for (const auto& s : sentences) f.sentences.push_back(tok.encode(s, false, false));
    } else {
      f.haystack = tok.encode(haystack_text.substr(0, std::min<size_t>(haystack_text.size(), size_t(longest) * 8)), false, false);
      if (f.haystack.empty()) throw std::invalid_argument("the haystack text is empty");
    }
    return f;
  }

  Text take(int64_t n) const {
    Text t;
    t.boundaries.push_back(0);
    if (!haystack.empty()) {
      while (int64_t(t.ids.size()) < n)
        t.ids.insert(t.ids.end(), haystack.begin(), haystack.begin() + std::min<int64_t>(haystack.size(), n - t.ids.size()));
      for (int64_t i = 1; i <= n; ++i) t.boundaries.push_back(i);
      return t;
    }
    for (size_t i = 0;; i = (i + 1) % sentences.size()) {
      if (int64_t(t.ids.size() + sentences[i].size()) > n) break;
      t.ids.insert(t.ids.end(), sentences[i].begin(), sentences[i].end());
      t.boundaries.push_back(int64_t(t.ids.size()));
    }
    return t;
  }
};

inline int64_t nearest(const std::vector<int64_t>& sorted, double at) {
  int64_t best = sorted.front();
  for (int64_t b : sorted)
    if (std::abs(double(b) - at) < std::abs(double(best) - at)) best = b;
  return best;
}

// The haystack with each needle inserted at the boundary nearest its depth
// (0 … 1 of the haystack); needles at the same boundary keep their order.
// Returns the tokens and where each needle starts, in the needles' order.
struct Placed {
  std::vector<int> ids;
  std::vector<int64_t> needle_at;
};
inline Placed place_needles(const Filler::Text& hay, const std::vector<std::vector<int>>& needles,
                            const std::vector<double>& depths) {
  std::vector<std::pair<int64_t, size_t>> at;  // (haystack offset, needle)
  for (size_t i = 0; i < needles.size(); ++i) at.push_back({nearest(hay.boundaries, depths.at(i) * double(hay.ids.size())), i});
  std::stable_sort(at.begin(), at.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  Placed p;
  p.needle_at.assign(needles.size(), 0);
  int64_t from = 0;
  for (const auto& [offset, i] : at) {
    p.ids.insert(p.ids.end(), hay.ids.begin() + from, hay.ids.begin() + offset);
    from = offset;
    p.needle_at[i] = int64_t(p.ids.size());
    p.ids.insert(p.ids.end(), needles[i].begin(), needles[i].end());
  }
  p.ids.insert(p.ids.end(), hay.ids.begin() + from, hay.ids.end());
  return p;
}

// A question and its candidate answers, "QUESTION" + " " + answer, cut where the
// tokenizer cuts them: the question is the tokens every candidate (and the bare
// question) shares, each answer the rest. Throws when an answer would be empty.
struct QuestionAndAnswers {
  std::vector<int> question;
  std::vector<std::vector<int>> answers;
};
inline QuestionAndAnswers split_answers(const Tokenizer& tok, const std::string& question,
                                        const std::vector<std::string>& answers) {
  std::vector<std::vector<int>> full;
  for (const auto& a : answers) full.push_back(tok.encode(question + " " + a, false, false));
  const std::vector<int> bare = tok.encode(question, false, false);
  size_t common = bare.size();
  for (const auto& f : full)
    common = std::min<size_t>(common, size_t(std::mismatch(f.begin(), f.end(), bare.begin(), bare.end()).first - f.begin()));
  QuestionAndAnswers qa;
  qa.question.assign(bare.begin(), bare.begin() + std::ptrdiff_t(common));
  for (const auto& f : full) {
    if (f.size() <= common) throw std::invalid_argument("the tokenizer merges an answer into the question");
    qa.answers.emplace_back(f.begin() + std::ptrdiff_t(common), f.end());
  }
  return qa;
}

}  // namespace ropescale::prompt_parts
