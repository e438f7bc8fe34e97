#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <queue>

#include "ropescale/config/error.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/model/tokenizer.h"
#include "space_mark.h"

namespace ropescale {

Llama2cTokenizer Llama2cTokenizer::load(const std::string& path, int expected_vocab_size) {
  MappedFile f(path);
  const auto b = f.bytes();
  size_t pos = 0;
  auto need = [&](size_t n, const char* what) {
    if (n > b.size() - pos) throw_unreadable(path, std::string("tokenizer: truncated while reading ") + what);
  };
  need(4, "max_token_length");
  int32_t max_len;
  std::memcpy(&max_len, b.data(), 4);
  pos = 4;
  if (max_len <= 0 || max_len > 1024) throw_unreadable(path, "tokenizer: max_token_length " + std::to_string(max_len) + " is absurd");
  Llama2cTokenizer t;
  while (pos < b.size()) {
    need(8, "a token's score and length");
    float score;
    int32_t len;
    std::memcpy(&score, b.data() + pos, 4);
    std::memcpy(&len, b.data() + pos + 4, 4);
    pos += 8;
    if (len < 0 || len > max_len)
      throw_unreadable(path, "tokenizer: token " + std::to_string(t.pieces_.size()) + " has length " + std::to_string(len) +
                                 " (max_token_length " + std::to_string(max_len) + ")");
    need(len, "a token's bytes");
    t.pieces_.emplace_back(reinterpret_cast<const char*>(b.data() + pos), len);
    t.scores_.push_back(score);
    pos += len;
    if (expected_vocab_size > 0 && static_cast<int>(t.pieces_.size()) == expected_vocab_size) break;
  }
  if (expected_vocab_size > 0 && t.vocab_size() != expected_vocab_size)
    throw_unreadable(path, "tokenizer: has " + std::to_string(t.vocab_size()) + " tokens, the model expects " +
                               std::to_string(expected_vocab_size));
  if (t.vocab_size() < 259) throw_unreadable(path, "tokenizer: fewer than 259 tokens (no byte fallback)");
  for (int i = 0; i < t.vocab_size(); ++i) t.index_.emplace(t.pieces_[i], i);  // first occurrence wins
  return t;
}

void Llama2cTokenizer::save(const std::string& path) const {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw_unreadable(path, "cannot open for writing");
  int32_t max_len = 0;
  for (const auto& p : pieces_) max_len = std::max<int32_t>(max_len, static_cast<int32_t>(p.size()));
  out.write(reinterpret_cast<const char*>(&max_len), 4);
  for (int i = 0; i < vocab_size(); ++i) {
    const int32_t len = static_cast<int32_t>(pieces_[i].size());
    out.write(reinterpret_cast<const char*>(&scores_[i]), 4);
    out.write(reinterpret_cast<const char*>(&len), 4);
    out.write(pieces_[i].data(), len);
  }
  if (!out) throw_unreadable(path, "write failed");
}

Llama2cTokenizer Llama2cTokenizer::byte_level() {
  std::vector<std::string> pieces{"<unk>", "<s>", "</s>"};
  char buf[8];
  for (int b = 0; b < 256; ++b) std::snprintf(buf, sizeof buf, "<0x%02X>", b), pieces.push_back(buf);
  return from_pieces(std::move(pieces), std::vector<float>(259, 0.0f));
}

bool Llama2cTokenizer::is_byte_level() const {
  // The specials' spellings vary (llama2.c writes "\n<s>\n"); what matters is one token per byte.
  static const Llama2cTokenizer bytes = byte_level();
  return pieces_.size() == bytes.pieces_.size() && std::equal(pieces_.begin() + 3, pieces_.end(), bytes.pieces_.begin() + 3);
}

Llama2cTokenizer Llama2cTokenizer::from_pieces(std::vector<std::string> pieces, std::vector<float> scores) {
  Llama2cTokenizer t;
  t.pieces_ = std::move(pieces);
  t.scores_ = std::move(scores);
  t.scores_.resize(t.pieces_.size(), 0.0f);
  for (int i = 0; i < t.vocab_size(); ++i) t.index_.emplace(t.pieces_[i], i);
  return t;
}

std::vector<int> Llama2cTokenizer::encode(const std::string& text_in, bool bos, bool eos) const {
  std::vector<int> ids;
  if (bos) ids.push_back(kBos);
  std::vector<int> toks;
  const auto space = index_.find(" ");
  // A SentencePiece-style vocabulary (one with a space piece) reads U+2581 in the text as a space,
  // as SentencePiece itself, llama.cpp and transformers do (they spell spaces U+2581); llama2.c's
  // run.c would byte-fall it back instead. Byte-level vocabularies keep its three bytes.
  const std::string mapped = space != index_.end() && text_in.find(detail::kSpaceMark) != std::string::npos
                                 ? detail::mark_to_spaces(text_in) : std::string();
  const std::string& text = mapped.empty() ? text_in : mapped;
  if (!text.empty() && space != index_.end()) toks.push_back(space->second);
  // One piece per UTF-8 character, byte fallback otherwise.
  for (size_t i = 0; i < text.size();) {
    const size_t n = std::min(utf8_sequence_length(static_cast<unsigned char>(text[i])), text.size() - i);
    const std::string ch = text.substr(i, n);
    auto it = index_.find(ch);
    if (it != index_.end()) {
      toks.push_back(it->second);
    } else {
      for (unsigned char byte : ch) toks.push_back(byte_token(byte));
    }
    i += n;
  }
  // Merge the best-scoring adjacent pair until none merges; among equal scores
  // the leftmost pair goes first. A heap of candidate pairs over a linked list
  // of symbols makes this O(n log n) instead of rescanning the text after every
  // merge; entries made stale by a neighbour's merge are skipped when popped.
  const size_t n = toks.size();
  std::vector<size_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1;  // wraps to SIZE_MAX at 0: "none"
  struct Candidate {
    float score;
    size_t left, right;
    int left_id, right_id, merged_id;
    bool operator<(const Candidate& o) const {  // max-heap: higher score, then smaller position
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::priority_queue<Candidate> heap;
  auto consider = [&](size_t l, size_t r) {
    if (l >= n || r >= n) return;
    auto it = index_.find(pieces_[toks[l]] + pieces_[toks[r]]);
    if (it != index_.end()) heap.push({scores_[it->second], l, r, toks[l], toks[r], it->second});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
  std::vector<char> alive(n, 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right || toks[c.left] != c.left_id ||
        toks[c.right] != c.right_id)
      continue;  // stale
    toks[c.left] = c.merged_id;
    alive[c.right] = 0;
    next[c.left] = next[c.right];
    if (next[c.right] < n) prev[next[c.right]] = c.left;
    consider(prev[c.left], c.left);
    consider(c.left, next[c.left]);
  }
  std::vector<int> merged;
  for (size_t i = 0; i < n; ++i)
    if (alive[i]) merged.push_back(toks[i]);
  toks.swap(merged);
  ids.insert(ids.end(), toks.begin(), toks.end());
  if (eos) ids.push_back(kEos);
  return ids;
}

std::string Llama2cTokenizer::decode(int previous, int token) const {
  if (token < 0 || token >= vocab_size()) return "";
  std::string p = pieces_[token];
  if (previous == kBos && !p.empty() && p[0] == ' ') p.erase(0, 1);
  unsigned int byte;
  if (p.size() == 6 && std::sscanf(p.c_str(), "<0x%02X>", &byte) == 1) return std::string(1, static_cast<char>(byte));
  return p;
}

}  // namespace ropescale
