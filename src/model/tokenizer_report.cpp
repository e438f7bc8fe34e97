#include "ropescale/model/tokenizer_report.h"

#include <filesystem>
#include <map>
#include <optional>

#include "ropescale/config/gguf.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/config/model_config.h"
#include "space_mark.h"

namespace ropescale {

namespace fs = std::filesystem;

namespace {

const std::string& byte_piece(int b) {
  static const Llama2cTokenizer bytes = Llama2cTokenizer::byte_level();
  return bytes.piece(3 + b);
}

// What keeps a SentencePiece-style vocabulary from tokenizing the same in every
// engine once written by ropescale: caveats for both engines, and for
// transformers' BPE alone (merge ranks instead of "leftmost among equal scores").
struct VocabularyCaveats {
  std::vector<std::string> both, transformers;
};

VocabularyCaveats vocabulary_caveats(const Llama2cTokenizer& tok) {
  VocabularyCaveats c;
  for (int b = 0; b < 256 && 3 + b < tok.vocab_size(); ++b)
    if (tok.piece(3 + b) != byte_piece(b)) {
      c.both.push_back("id " + std::to_string(3 + b) + " is \"" + tok.piece(3 + b) + "\", not the byte token " + byte_piece(b) +
                       ": ropescale's byte fallback uses ids 3-258, the others look the byte tokens up by name");
      break;
    }
  std::map<std::string, int> first;
  std::map<float, int> merged_by_score;
  for (int i = 3; i < tok.vocab_size(); ++i) {
    const std::string& p = tok.piece(i);
    if (p.find(detail::kSpaceMark) != std::string::npos) {
      c.both.push_back("piece " + std::to_string(i) + " contains U+2581, which every engine reads as a space");
    }
    if (auto [it, fresh] = first.emplace(p, i); !fresh) {
      c.both.push_back("pieces " + std::to_string(it->second) + " and " + std::to_string(i) + " are both \"" + p +
                       "\" (ropescale uses the first; llama.cpp the last)");
    }
    if (p.size() > 1 && i >= 259) ++merged_by_score[tok.score(i)];
  }
  int tied = 0;
  for (const auto& [score, n] : merged_by_score) tied += n > 1 ? n : 0;
  if (tied > 0)
    c.transformers.push_back(std::to_string(tied) + " multi-character pieces share a score with another: where two such "
                             "merges overlap, ropescale takes the leftmost, transformers' BPE the lower id");
  return c;
}

std::vector<std::string> joined(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

EngineTokenization engine(std::string name, std::string how, std::vector<std::string> caveats) {
  const bool exact = caveats.empty();
  return {std::move(name), std::move(how), exact, std::move(caveats)};
}

TokenizerReport base_report(const Llama2cTokenizer& tok, std::string source) {
  TokenizerReport r;
  r.source = std::move(source);
  r.vocab_size = tok.vocab_size();
  if (tok.is_byte_level()) {
    r.kind = "byte-level";
    r.ropescale = "one token per UTF-8 byte (ids 3-258), BOS first";
  } else {
    r.kind = "sentencepiece";
    r.ropescale = "SentencePiece-style BPE: a leading space, one piece per character (byte fallback), then the "
                  "best-scoring merges first; U+2581 reads as a space; BOS first";
  }
  return r;
}

const char* kGgufByteLevel = "GGUF tokenizer.ggml.model \"gpt2\" with no merges: one token per byte";
const char* kGgufSentencePiece = "GGUF tokenizer.ggml.model \"llama\" (SentencePiece, spaces spelled U+2581)";
const char* kHfByteLevel = "tokenizer.json: ByteLevel BPE without merges or regex split, BOS template";
const char* kHfSentencePiece = "tokenizer.json: BPE with byte fallback, merges ordered by score, Prepend/Replace U+2581 "
                               "normalizer, BOS template";

}  // namespace

std::vector<std::string> TokenizerReport::warnings(std::string_view only) const {
  std::vector<std::string> out;
  for (const auto& e : engines)
    if (only.empty() || e.engine == only)
      for (const auto& c : e.caveats) out.push_back(e.engine + ": " + c);
  return out;
}

TokenizerReport report_written_vocabulary(const Llama2cTokenizer& tok) {
  TokenizerReport r = base_report(tok, "");
  const bool bytes = tok.is_byte_level();
  const VocabularyCaveats c = bytes ? VocabularyCaveats{} : vocabulary_caveats(tok);
  r.engines.push_back(engine("llama.cpp", bytes ? kGgufByteLevel : kGgufSentencePiece, c.both));
  r.engines.push_back(engine("transformers", bytes ? kHfByteLevel : kHfSentencePiece, joined(c.both, c.transformers)));
  return r;
}

TokenizerReport report_model_tokenizer(const ModelConfig& config, const std::string& model_path, const std::string& explicit_path) {
  const TokenizerFile file = locate_tokenizer(config, model_path, explicit_path);
  const Llama2cTokenizer tok = vocabulary_for_config(config, model_path, explicit_path);
  TokenizerReport r = report_written_vocabulary(tok);
  r.source = file.path;
  EngineTokenization& llamacpp = r.engines[0];
  EngineTokenization& hf = r.engines[1];
  if (file.kind == TokenizerFile::Kind::Gguf) {
    // llama.cpp reads this file's own tokenizer metadata, which another writer may have set differently.
    MappedFile mapped(file.path);
    const GgufFile gguf = parse_gguf(mapped.bytes(), file.path);
    auto text = [&](const char* key) {
      const auto* kv = gguf.find(key);
      return kv && kv->value.is_string() ? kv->value.get<std::string>() : std::string();
    };
    auto flag = [&](const char* key) -> std::optional<bool> {
      const auto* kv = gguf.find(key);
      if (kv && kv->value.is_boolean()) return kv->value.get<bool>();
      return std::nullopt;
    };
    const std::string model = text("tokenizer.ggml.model");
    std::vector<std::string> file_caveats;
    if (model != "llama" && model != "gpt2")
      file_caveats.push_back("tokenizer.ggml.model is \"" + model + "\": llama.cpp tokenizes it its own way, ropescale as SentencePiece");
    if (model == "llama" && flag("tokenizer.ggml.add_space_prefix") == false)
      file_caveats.push_back("tokenizer.ggml.add_space_prefix is false: llama.cpp adds no leading space, ropescale does");
    if (flag("tokenizer.ggml.add_bos_token") == false)
      file_caveats.push_back("tokenizer.ggml.add_bos_token is false: llama.cpp adds no BOS, ropescale does");
    if (model == "llama" && tok.is_byte_level())
      file_caveats.push_back("a byte-level vocabulary declared as SentencePiece: llama.cpp turns spaces into U+2581 "
                             "(re-convert it with `ropescale convert`, which writes it as gpt2)");
    llamacpp.how = "this file's " + (model == "gpt2" ? std::string(kGgufByteLevel)
                                                       : "GGUF tokenizer.ggml.model \"" + model + "\"" +
                                                             (model == "llama" ? " (SentencePiece, spaces spelled U+2581)" : ""));
    llamacpp.caveats = joined(file_caveats, llamacpp.caveats);
    llamacpp.exact = llamacpp.caveats.empty();
    hf.how = "after `ropescale convert --to safetensors`: " + hf.how;
  } else {
    llamacpp.how = "after `ropescale convert`: " + llamacpp.how;
    if (config.format == SourceFormat::HfConfig) {
      const fs::path dir = fs::is_directory(model_path) ? fs::path(model_path) : fs::path(model_path).parent_path();
      if (!fs::exists(dir / "tokenizer.json")) {
        hf.how = "no tokenizer.json in " + dir.string() + " (`ropescale convert --to safetensors` writes one)";
        hf.caveats.insert(hf.caveats.begin(), "transformers finds no tokenizer.json to load");
      } else if (file.kind == TokenizerFile::Kind::SentencePiece) {
        hf.how = "its tokenizer.json (not written by ropescale, which reads tokenizer.model with SentencePiece)";
        hf.caveats.insert(hf.caveats.begin(), "ropescale cannot vouch for a tokenizer.json it did not write");
      } else {
        hf.how = "its " + hf.how;
      }
    } else {
      hf.how = "after `ropescale convert --to safetensors`: " + hf.how;
    }
    hf.exact = hf.caveats.empty();
  }
  return r;
}

}  // namespace ropescale
