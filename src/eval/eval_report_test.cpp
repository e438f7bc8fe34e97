#include "ropescale/eval/eval_report.h"

#include <cmath>

#include <gtest/gtest.h>

#include "test_support.h"

#include "tiny_model.h"

namespace ropescale {
namespace {

using test::count_occurrences;
int count(const std::string& s, const std::string& what) { return count_occurrences(s, what); }

// A finished run with made-up numbers: two methods, two lengths, one passkey cell each.
EvalReport sample_report() {
  const LlamaModel model = test::tiny_llama(8, 16, 1, 2, 1, 300, 16);
  EvalReport r;
  r.model_path = "tiny<model>.bin";
  r.input = "text.txt";
  r.input_tokens = 4096;
  r.methods = resolve_eval_methods(model, parse_eval_methods({"none,yarn:2"}, 16));
  r.ppl_options.ctxs = {16, 32};
  r.bucket = 8;
  for (const auto& m : r.methods)
    for (int64_t ctx : r.ppl_options.ctxs) {
      PerplexityResult x;
      x.setting = m;
      x.ctx = ctx;
      x.windows = 2;
      x.position_nll.assign(ctx, 0.0);
      x.position_tokens.assign(ctx, 0);
      for (int64_t t = 1; t < ctx; ++t) x.position_nll[t] = 2 * (m.label == "none" ? 1.0 : 1.1), x.position_tokens[t] = 2;
      x.tokens = 2 * (ctx - 1);
      x.nll = m.label == "none" ? 1.0 : 1.1;
      x.ppl = std::exp(x.nll);
      r.ppl.push_back(x);
    }
  PasskeyOptions po;
  po.lengths = {16, 32};
  po.depths = {0.5};
  po.trials = 1;
  po.alternatives = 4;
  r.passkey_options = po;
  for (const auto& m : r.methods)
    for (int64_t l : po.lengths) r.passkey.push_back({m.label, l, 0.5, 0, "12345", " 12345", l == 16, l == 16 ? 1 : 3, -2.0});
  return r;
}

TEST(EvalReport, JsonContract) {
  const LlamaModel m = test::tiny_llama(8, 16, 1, 2, 1, 300, 16);
  const auto j = eval_json(sample_report(), m);
  EXPECT_EQ(j["model"], "tiny<model>.bin");
  EXPECT_EQ(j["trained_context"], 16);
  ASSERT_EQ(j["results"].size(), 4u);
  const auto& first = j["results"][0];
  EXPECT_EQ(first["method"], "none");
  EXPECT_EQ(first["rope_scaling"]["rope_type"], "default");
  EXPECT_EQ(first["ctx"], 16);
  EXPECT_EQ(first["tokens"], 30);
  EXPECT_DOUBLE_EQ(first["nll"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(first["ppl"].get<double>(), std::exp(1.0));
  ASSERT_EQ(first["buckets"].size(), 2u);  // [0, 8) and [8, 16)
  EXPECT_EQ(first["buckets"][0]["start"], 0);
  EXPECT_EQ(first["buckets"][0]["end"], 8);
  EXPECT_EQ(first["buckets"][0]["tokens"], 14);  // position 0 is never scored
  int64_t in_buckets = 0;
  for (const auto& b : j["results"][3]["buckets"]) in_buckets += b["tokens"].get<int64_t>();
  EXPECT_EQ(in_buckets, j["results"][3]["tokens"].get<int64_t>());
  // yarn:2 at 16 (≤ trained) against none: +10 % NLL → exp(0.1) − 1 in perplexity.
  const auto& sc = j["short_context"];
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[1]["method"], "yarn:2");
  EXPECT_NEAR(sc[1]["change_percent"].get<double>(), (std::exp(0.1) - 1) * 100, 1e-9);
  ASSERT_EQ(j["passkey"]["cells"].size(), 4u);
  EXPECT_DOUBLE_EQ(j["passkey"]["cells"][1]["rank_score"].get<double>(), 0.5);  // rank 3 of 5
  EXPECT_EQ(j["passkey"]["trials"][0]["exact"], true);
}

TEST(EvalReport, HtmlHasEveryPlotTableAndExport) {
  const LlamaModel m = test::tiny_llama(8, 16, 1, 2, 1, 300, 16);
  const std::string h = eval_report_html(sample_report(), m);
  EXPECT_EQ(h.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(h, "<svg"), 1 + 2 + 2);  // perplexity vs length, NLL by position per ctx, a heatmap per method
  EXPECT_EQ(count(h, "<script"), 0);
  EXPECT_EQ(count(h, "http://") + count(h, "https://"), count(h, "xmlns=\"http://www.w3.org/2000/svg\""));  // nothing fetched
  EXPECT_NE(h.find("tiny&lt;model&gt;.bin"), std::string::npos);
  EXPECT_EQ(h.find("tiny<model>"), std::string::npos);
  EXPECT_NE(h.find("Short-context regression"), std::string::npos);
  EXPECT_NE(h.find("+10.52 %"), std::string::npos);  // yarn:2 at 16
  EXPECT_NE(h.find("--rope-scaling"), std::string::npos);  // the vLLM export
  EXPECT_NE(h.find("--rope-scaling yarn"), std::string::npos);  // llama.cpp's flags
  const std::string text = eval_summary_text(sample_report(), m);
  EXPECT_NE(text.find("+10.52%"), std::string::npos);
  EXPECT_NE(text.find("1/1 1.00"), std::string::npos);
}

}  // namespace
}  // namespace ropescale
