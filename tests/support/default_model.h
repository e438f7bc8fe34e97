// The committed default model (models/ropescale-kjv-256.gguf) with its
// tokenizer, loaded once per test binary; nullptr when the file is absent.
#pragma once

#include <filesystem>
#include <memory>

#include "ropescale/model/llama_model.h"
#include "ropescale/model/tokenizer.h"
#include "test_support.h"

namespace ropescale::test {

struct DefaultModel {
  LlamaModel model;
  std::unique_ptr<Tokenizer> tok;
};

inline const DefaultModel* default_model() {
  static const DefaultModel* m = []() -> const DefaultModel* {
    const auto path = (source_dir() / "models/ropescale-kjv-256.gguf").string();
    if (!std::filesystem::exists(path)) return nullptr;
    auto* d = new DefaultModel{load_model(path), nullptr};
    d->tok = tokenizer_for_model(d->model, path);
    return d;
  }();
  return m;
}

}  // namespace ropescale::test

// In a test body: `var` points at the default model, or the test is skipped loudly.
#define ROPESCALE_NEED_DEFAULT_MODEL(var)                       \
  const ::ropescale::test::DefaultModel* var = ::ropescale::test::default_model(); \
  if (!var) GTEST_SKIP() << "SKIPPED LOUDLY: models/ropescale-kjv-256.gguf is absent"
