#include <sentencepiece_processor.h>

#include <filesystem>

#include "ropescale/config/error.h"
#include "ropescale/config/model_config.h"
#include "ropescale/model/gguf_model.h"
#include "ropescale/model/llama_model.h"
#include "ropescale/model/tokenizer.h"
#include "space_mark.h"

namespace ropescale {

namespace fs = std::filesystem;

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::load(const std::string& path) {
  auto t = std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer());
  t->impl_ = std::make_unique<Impl>();
  if (!fs::is_regular_file(path)) throw_unreadable(path, "no such file");
  const auto status = t->impl_->sp.Load(path);
  if (!status.ok()) throw_unreadable(path, "not a SentencePiece model (" + status.ToString() + ")");
  return t;
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int> SentencePieceTokenizer::encode(const std::string& text, bool bos, bool eos) const {
  std::vector<int> ids;
  if (bos) ids.push_back(this->bos());
  std::vector<int> body;
  impl_->sp.Encode(text, &body);
  ids.insert(ids.end(), body.begin(), body.end());
  if (eos) ids.push_back(this->eos());
  return ids;
}

std::string SentencePieceTokenizer::decode(int previous, int token) const {
  if (token < 0 || token >= vocab_size()) return "";
  if (impl_->sp.IsControl(token)) return "";
  if (impl_->sp.IsByte(token)) {
    const std::string p = impl_->sp.IdToPiece(token);  // "<0xAB>"
    return std::string(1, static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16)));
  }
  std::string out = detail::mark_to_spaces(impl_->sp.IdToPiece(token));
  if (previous == bos() && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

int SentencePieceTokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }
int SentencePieceTokenizer::bos() const { return impl_->sp.bos_id() >= 0 ? impl_->sp.bos_id() : 1; }
int SentencePieceTokenizer::eos() const { return impl_->sp.eos_id() >= 0 ? impl_->sp.eos_id() : 2; }

Llama2cTokenizer SentencePieceTokenizer::to_llama2c() const {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  for (int i = 0; i < vocab_size(); ++i) {
    pieces.push_back(detail::mark_to_spaces(impl_->sp.IdToPiece(i)));
    scores.push_back(impl_->sp.GetScore(i));
  }
  return Llama2cTokenizer::from_pieces(std::move(pieces), std::move(scores));
}

namespace {

// The directory a model's companion files live in.
fs::path model_dir(const std::string& model_path) {
  return fs::is_directory(model_path) ? fs::path(model_path) : fs::path(model_path).parent_path();
}

}  // namespace

TokenizerFile locate_tokenizer(const ModelConfig& c, const std::string& model_path, const std::string& explicit_path) {
  using K = TokenizerFile::Kind;
  if (!explicit_path.empty())
    return {fs::path(explicit_path).extension() == ".model" ? K::SentencePiece : K::Llama2c, explicit_path};
  if (c.format == SourceFormat::Gguf) return {K::Gguf, model_path};
  const fs::path dir = model_dir(model_path);
  if (fs::exists(dir / "tokenizer.model")) return {K::SentencePiece, (dir / "tokenizer.model").string()};
  for (const auto& name : {std::string("tokenizer.bin"), "tok" + std::to_string(c.vocab_size) + ".bin"})
    if (fs::exists(dir / name)) return {K::Llama2c, (dir / name).string()};
  throw_unreadable(model_path, "no tokenizer found beside the model (tokenizer.model, tokenizer.bin or tok" +
                                   std::to_string(c.vocab_size) + ".bin): pass --tokenizer");
}

namespace {

void check_size(int got, int64_t expected, const std::string& path) {
  if (got != expected)
    throw_unreadable(path, "tokenizer has " + std::to_string(got) + " tokens, the model " + std::to_string(expected));
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_for_model(const LlamaModel& model, const std::string& model_path,
                                               const std::string& explicit_path) {
  using K = TokenizerFile::Kind;
  const auto [kind, path] = locate_tokenizer(model.position, model_path, explicit_path);
  std::unique_ptr<Tokenizer> t;
  switch (kind) {
    case K::SentencePiece: t = SentencePieceTokenizer::load(path); break;
    case K::Llama2c: t = std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(path, model.hp.vocab_size)); break;
    case K::Gguf: t = std::make_unique<Llama2cTokenizer>(load_gguf_tokenizer(path)); break;
  }
  check_size(t->vocab_size(), model.hp.vocab_size, path);
  return t;
}

Llama2cTokenizer vocabulary_for_config(const ModelConfig& c, const std::string& model_path, const std::string& explicit_path) {
  using K = TokenizerFile::Kind;
  const auto [kind, path] = locate_tokenizer(c, model_path, explicit_path);
  Llama2cTokenizer t = kind == K::SentencePiece ? SentencePieceTokenizer::load(path)->to_llama2c()
                       : kind == K::Gguf        ? load_gguf_tokenizer(path)
                                                : Llama2cTokenizer::load(path, static_cast<int>(c.vocab_size));
  check_size(t.vocab_size(), c.vocab_size, path);
  return t;
}

Llama2cTokenizer vocabulary_for_model(const LlamaModel& model, const std::string& model_path, const std::string& explicit_path) {
  return vocabulary_for_config(model.position, model_path, explicit_path);
}

}  // namespace ropescale
