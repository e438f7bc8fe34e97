// The llama2.c tokenizer (tokenizer.bin): a SentencePiece-style BPE vocabulary
// with scores, byte fallback <0x00>…<0xFF>, BOS 1 / EOS 2.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace ropescale {

class Llama2cTokenizer {
 public:
  // Throws ConfigError naming the file when it is truncated or malformed.
  static Llama2cTokenizer load(const std::string& path, int expected_vocab_size = 0);

  // llama2.c's encode: dummy leading space, one piece per UTF-8 character
  // (byte fallback when absent), then repeatedly merge the adjacent pair with
  // the highest-scoring merged piece.
  std::vector<int> encode(const std::string& text, bool bos, bool eos) const;
  // The text of `token` following `previous` (drops the space after BOS,
  // turns <0xXX> into its byte).
  std::string decode(int previous, int token) const;

  // Writes the llama2.c tokenizer.bin format. Throws ConfigError on I/O failure.
  void save(const std::string& path) const;
  // From a vocabulary in memory (e.g. a GGUF's tokenizer.ggml.* arrays).
  static Llama2cTokenizer from_pieces(std::vector<std::string> pieces, std::vector<float> scores);

  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  const std::string& piece(int id) const { return pieces_.at(id); }
  float score(int id) const { return scores_.at(id); }
  static constexpr int kBos = 1, kEos = 2;

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> index_;
  int byte_token(unsigned char b) const { return b + 3; }
};

}  // namespace ropescale
