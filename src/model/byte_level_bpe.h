// GPT-2's byte → character map, the "byte-level BPE" convention of llama.cpp's
// gpt2 tokenizer and HF tokenizers' ByteLevel: printable Latin-1 bytes stand
// for themselves, the other 68 for U+0100 onwards in byte order. A byte-level
// vocabulary with no merges written this way tokenizes any text one token per
// byte in both engines (gguf_model.cpp, hf_model.cpp).
#pragma once

#include <string>

namespace ropescale::detail {

inline bool byte_level_printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

// The character (UTF-8) standing for byte b, 0 ≤ b < 256.
inline std::string byte_level_char(int b) {
  int cp = b;
  if (!byte_level_printable(b)) {
    cp = 256;
    for (int x = 0; x < b; ++x) cp += !byte_level_printable(x);
  }
  std::string out;
  if (cp < 0x80) out += char(cp);
  else out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));  // cp < 0x800 here
  return out;
}

}  // namespace ropescale::detail
