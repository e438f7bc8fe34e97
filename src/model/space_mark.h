// SentencePiece spells a space U+2581 ("▁"); llama2.c's tokenizer.bin spells it
// ' '. The GGUF and HF writers, the SentencePiece converter and the encoder
// (which reads a ▁ in text as a space, as SentencePiece does) share these.
#pragma once

#include <string>

namespace ropescale::detail {

inline const std::string kSpaceMark = "\xe2\x96\x81";

inline std::string spaces_to_mark(const std::string& s) {
  std::string out;
  for (char c : s) out += c == ' ' ? kSpaceMark : std::string(1, c);
  return out;
}

inline std::string mark_to_spaces(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();)
    if (s.compare(i, kSpaceMark.size(), kSpaceMark) == 0) out += ' ', i += kSpaceMark.size();
    else out += s[i++];
  return out;
}

}  // namespace ropescale::detail
