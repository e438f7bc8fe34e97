// How each engine tokenizes a model's file — ropescale, llama.cpp (its GGUF
// tokenizer) and transformers (tokenizer.json) — and whether the other two give
// ropescale's ids. `inspect` prints it; `convert` warns with it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ropescale/model/tokenizer.h"

namespace ropescale {

struct ModelConfig;

struct EngineTokenization {
  std::string engine;                 // "llama.cpp", "transformers"
  std::string how;                    // what that engine reads and does
  bool exact = true;                  // same ids as ropescale on any text
  std::vector<std::string> caveats;   // why not (empty when exact)
};

struct TokenizerReport {
  std::string kind;        // "byte-level" or "sentencepiece"
  std::string source;      // the file the vocabulary comes from
  int vocab_size = 0;
  std::string ropescale;   // how ropescale encodes
  std::vector<EngineTokenization> engines;
  // "engine: caveat" for each engine that is not exact (only `engine`'s when given).
  std::vector<std::string> warnings(std::string_view engine = {}) const;
};

// What ropescale's writers make of `vocab` (GGUF and the HF export) — for `convert`.
TokenizerReport report_written_vocabulary(const Llama2cTokenizer& vocab);

// The vocabulary a model file carries or sits beside, as each engine will read
// that file (a GGUF's own tokenizer metadata; an HF directory's tokenizer.json);
// engines that cannot read the file directly are described as after `convert`.
// Throws ConfigError when no tokenizer is found.
TokenizerReport report_model_tokenizer(const ModelConfig& config, const std::string& model_path,
                                       const std::string& explicit_path = "");

}  // namespace ropescale
