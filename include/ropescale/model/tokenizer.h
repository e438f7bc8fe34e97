// Tokenizers: the llama2.c format (tokenizer.bin: a SentencePiece-style BPE
// vocabulary with scores, byte fallback <0x00>…<0xFF>, BOS 1 / EOS 2), and
// SentencePiece models (tokenizer.model) through Debian's libsentencepiece.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace ropescale {

struct LlamaModel;
struct ModelConfig;

// Bytes of the UTF-8 character a lead byte starts (1 for ASCII, continuation or invalid bytes).
inline size_t utf8_sequence_length(unsigned char lead) {
  return (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 1;
}

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int> encode(const std::string& text, bool bos, bool eos) const = 0;
  // The text of `token` following `previous` (a leading space after BOS dropped).
  virtual std::string decode(int previous, int token) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos() const { return 1; }
  virtual int eos() const { return 2; }
};

class Llama2cTokenizer : public Tokenizer {
 public:
  // Throws ConfigError naming the file when it is truncated or malformed.
  static Llama2cTokenizer load(const std::string& path, int expected_vocab_size = 0);

  // llama2.c's encode: dummy leading space, one piece per UTF-8 character
  // (byte fallback when absent), then repeatedly merge the adjacent pair with
  // the highest-scoring merged piece. A U+2581 in the text counts as a space
  // when the vocabulary has a space piece, as in SentencePiece, llama.cpp and
  // transformers (llama2.c's run.c would byte-fall it back).
  std::vector<int> encode(const std::string& text, bool bos, bool eos) const override;
  // The text of `token` following `previous` (drops the space after BOS,
  // turns <0xXX> into its byte).
  std::string decode(int previous, int token) const override;

  // Writes the llama2.c tokenizer.bin format. Throws ConfigError on I/O failure.
  void save(const std::string& path) const;
  // Byte level: <unk>, <s>, </s>, then <0x00> … <0xFF> (ids 3 … 258) and no
  // merges, so every byte is one token (and no dummy leading space is added).
  static Llama2cTokenizer byte_level();
  // True for byte_level()'s vocabulary: 259 tokens, ids 3 … 258 the bytes <0x00> … <0xFF>.
  bool is_byte_level() const;
  // From a vocabulary in memory (e.g. a GGUF's tokenizer.ggml.* arrays).
  static Llama2cTokenizer from_pieces(std::vector<std::string> pieces, std::vector<float> scores);

  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  const std::string& piece(int id) const { return pieces_.at(id); }
  float score(int id) const { return scores_.at(id); }
  static constexpr int kBos = 1, kEos = 2;

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> index_;
  int byte_token(unsigned char b) const { return b + 3; }
};

// A SentencePiece model (tokenizer.model), e.g. Llama-2's.
class SentencePieceTokenizer : public Tokenizer {
 public:
  // Throws ConfigError naming the file when it cannot be loaded.
  static std::unique_ptr<SentencePieceTokenizer> load(const std::string& path);
  ~SentencePieceTokenizer() override;
  std::vector<int> encode(const std::string& text, bool bos, bool eos) const override;
  std::string decode(int previous, int token) const override;
  int vocab_size() const override;
  int bos() const override;
  int eos() const override;
  // The same vocabulary as pieces and scores (spaces for U+2581), for writers.
  Llama2cTokenizer to_llama2c() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where a model's vocabulary comes from: `explicit_path` if given (.model =
// SentencePiece, else llama2.c format); else the GGUF itself; else
// tokenizer.model, tokenizer.bin or tok<vocab>.bin beside the model (or inside
// its directory). Throws ConfigError when none is found.
struct TokenizerFile {
  enum class Kind { SentencePiece, Llama2c, Gguf } kind;
  std::string path;
};
TokenizerFile locate_tokenizer(const ModelConfig& config, const std::string& model_path, const std::string& explicit_path = "");

// The tokenizer that goes with a model (located as above). Throws ConfigError
// when none is found or its size disagrees with the model's vocabulary.
std::unique_ptr<Tokenizer> tokenizer_for_model(const LlamaModel& model, const std::string& model_path,
                                               const std::string& explicit_path = "");
// Same, as pieces and scores (what the GGUF/HF writers store).
Llama2cTokenizer vocabulary_for_model(const LlamaModel& model, const std::string& model_path,
                                      const std::string& explicit_path = "");
// Same from the config alone (no weights read), e.g. for `inspect`.
Llama2cTokenizer vocabulary_for_config(const ModelConfig& config, const std::string& model_path,
                                       const std::string& explicit_path = "");

}  // namespace ropescale
