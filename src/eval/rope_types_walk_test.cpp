// Every row of the rope-type registry, walked through every layer that reads
// it: its shorthand → the dict → parse → validate → frequencies → `check` →
// the four exports → a GGUF written and read back (ropescale's record and
// llama.cpp's keys). A row added to rope_types.cpp is covered here the day it
// is added; nothing in this file names a type.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "ropescale/advice/check.h"
#include "ropescale/advice/export.h"
#include "ropescale/config/gguf.h"
#include "ropescale/config/gguf.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/eval/eval_method.h"
#include "ropescale/model/gguf_model.h"
#include "ropescale/model/session.h"
#include "ropescale/rope/frequencies.h"
#include "ropescale/rope/rope_types.h"
#include "test_support.h"
#include "tiny_model.h"

namespace ropescale {
namespace {

using nlohmann::json;

constexpr int kTrained = 256;

// The row's shorthand at factor 4 (a factors file for rows that take one).
std::string shorthand_for(const RopeTypeInfo& r) {
  const std::string name(r.shorthand);
  switch (r.shorthand_arg) {
    case ShorthandArg::None: return name;
    case ShorthandArg::Factor:
    case ShorthandArg::OptionalFactor: return name + ":4";
    case ShorthandArg::File: {
      // Per-pair lists that differ (short 1…, long rising) so the two regimes are told apart.
      json j = json::object();
      int list = 0;
      for (const RopeParam& p : r.params)
        if (p.kind == ParamKind::PairList) {
          json a = json::array();
          for (int i = 0; i < 8; ++i) a.push_back(1.0 + list * (1.0 + i));
          j[std::string(p.key)] = a;
          ++list;
        }
      j["factor"] = 4.0;
      return name + ":" + test::write_temp(name + "-factors.json", j.dump());
    }
  }
  return name;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double w = 0;
  for (size_t j = 0; j < a.size(); ++j) w = std::max(w, std::abs(a[j] - b[j]) / std::abs(b[j]));
  return w;
}

TEST(RopeTypesWalk, EveryRowThroughEveryLayer) {
  // dim 64, 4 heads: head_dim 16, 8 rotary pairs.
  const LlamaModel model = test::tiny_llama(64, 96, 1, 4, 2, 259, kTrained);
  const auto tok = Llama2cTokenizer::byte_level();
  for (const RopeTypeInfo& row : rope_types()) {
    SCOPED_TRACE("rope type " + std::string(row.name));
    // shorthand → dict
    const EvalMethod method = parse_eval_method(shorthand_for(row), kTrained);
    const json dict = json::parse(method.rope_scaling);
    EXPECT_EQ(dict["rope_type"], std::string(row.name));

    // dict → ModelConfig → RopeSpec (the one reader), validated
    ModelConfig cfg = model.position;
    cfg.max_position_embeddings = kTrained;
    apply_rope_setting(cfg, dict, "--methods");
    const RopeSpec spec = rope_spec_for(cfg);
    EXPECT_EQ(spec.type, row.type);
    EXPECT_EQ(validate(spec), "");
    EXPECT_EQ(spec, rope_spec_for_model(model, method.rope_scaling));

    // frequencies: one finite positive per pair, at the trained length and at 8×
    for (int64_t len : {int64_t{kTrained}, int64_t{8 * kTrained}}) {
      const auto f = compute_frequencies(spec, len);
      ASSERT_EQ(f.inv_freq.size(), 8u);
      for (double x : f.inv_freq) EXPECT_TRUE(std::isfinite(x) && x > 0);
      EXPECT_TRUE(std::isfinite(f.attention_factor) && f.attention_factor > 0);
    }

    // check: the dict a shorthand makes is one ropescale itself finds no fault in
    for (const auto& finding : check_config(cfg)) {
      EXPECT_NE(finding.severity, Severity::Error) << finding.rule << " " << finding.key;
      EXPECT_NE(finding.rule, "unknown-key") << finding.key;
    }

    // export: the row says which engines run it exactly, and export agrees
    const std::pair<ExportTarget, EngineSupport> engines[] = {{ExportTarget::HF, row.hf},
                                                              {ExportTarget::HFv5, row.hf},
                                                              {ExportTarget::VLLM, row.vllm},
                                                              {ExportTarget::LlamaCpp, row.llama_cpp}};
    for (auto [target, support] : engines) {
      const ExportResult r = export_setting(cfg, target, 8 * kTrained);
      EXPECT_EQ(r.exact, support == EngineSupport::Exact) << to_string(target);
      EXPECT_FALSE(r.text.empty());
      if (!r.exact) {
        EXPECT_FALSE(r.notes.empty()) << to_string(target) << " must say what differs";
      }
    }

    // GGUF: ropescale's record round-trips exactly …
    const auto bytes = serialize_gguf_model(model, tok, WeightType::F32, dict);
    const LlamaModel back = load_model(test::write_temp("walk.gguf", bytes));
    const RopeSpec again = rope_spec_for_model(back);
    EXPECT_EQ(again.type, row.type);
    for (int64_t len : {int64_t{kTrained}, int64_t{8 * kTrained}})
      EXPECT_EQ(compute_frequencies(again, len).inv_freq, compute_frequencies(spec, len).inv_freq);

    // … and llama.cpp's keys alone give what the row promises llama.cpp runs:
    // the same rotation where it can express the type, plain RoPE where it cannot.
    const GgufFile file = parse_gguf(bytes, "walk.gguf");
    const ModelConfig llama_cpp_view = model_config_from_gguf_keys(bytes, file, "walk.gguf");
    RopeSpec expected = spec;
    if (row.gguf == GgufEncoding::NotExpressible) expected = rope_spec_for_model(model);
    const RopeSpec seen = rope_spec_for(llama_cpp_view);
    for (int64_t len : {int64_t{kTrained}, int64_t{8 * kTrained}}) {
      // LongRoPE: llama.cpp's llama architecture rotates with the long factors at every length.
      if (row.gguf == GgufEncoding::LongRopeFreqs && len <= kTrained) continue;
      const auto got = compute_frequencies(seen, len), want = compute_frequencies(expected, len);
      EXPECT_LE(max_rel_diff(got.inv_freq, want.inv_freq), 1e-6) << "at " << len << " tokens";
      EXPECT_NEAR(got.attention_factor, want.attention_factor, 1e-6 * want.attention_factor) << "at " << len << " tokens";
    }
  }
}

}  // namespace
}  // namespace ropescale
