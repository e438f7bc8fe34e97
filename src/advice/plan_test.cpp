#include "ropescale/advice/plan.h"
#include "ropescale/kernels/kv_storage.h"

#include <gtest/gtest.h>

#include "ropescale/config/hf_config.h"
#include "test_support.h"

namespace ropescale {
namespace {

ModelConfig model(const std::string& name) { return load_model_config(test::model_config(name).string()); }

Plan plan(const ModelConfig& c, int64_t target, bool finetune = false, bool mixed = false) {
  PlanOptions o;
  o.target_context = target;
  o.will_finetune = finetune;
  o.mixed_traffic = mixed;
  return make_plan(c, o);
}

TEST(Plan, DecisionRules) {
  auto code = model("codellama-7b");  // trained at 16384, no scaling
  EXPECT_EQ(plan(code, 8192).method, "none");
  auto y2 = plan(code, 32768);
  EXPECT_EQ(y2.method, "yarn");
  EXPECT_FALSE(y2.needs_finetune);
  EXPECT_EQ(y2.rope_scaling["factor"], 2.0);
  EXPECT_EQ(y2.rope_scaling["original_max_position_embeddings"], 16384);
  auto y8 = plan(code, 131072);
  EXPECT_EQ(y8.method, "yarn");
  EXPECT_TRUE(y8.needs_finetune);
  EXPECT_EQ(plan(code, 65536, false, true).method, "dynamic");
  EXPECT_EQ(plan(model("bloom-560m"), 8192).method, "not-rope-scaling");
  EXPECT_EQ(plan(model("mpt-7b"), 8192).method, "not-rope-scaling");
  EXPECT_EQ(plan(model("mistral-7b-v0.1"), 65536).method, "not-rope-scaling");
  EXPECT_EQ(plan(model("llama-3.1-8b"), 65536).method, "none");  // already reaches 131072
  auto l = plan(model("llama-3.1-8b"), 262144);
  EXPECT_EQ(l.method, "llama3");
  EXPECT_EQ(l.rope_scaling["factor"], 32.0);
  EXPECT_THROW(plan(code, 0), std::exception);
}

TEST(Plan, RoundsFactorsUpAndPlansAreClean) {
  auto c = parse_hf_config(R"({"hidden_size":4096,"num_attention_heads":32,"num_hidden_layers":32,"max_position_embeddings":4096})", "c.json");
  auto p = plan(c, 10000);
  EXPECT_EQ(p.rope_scaling["factor"], 2.45);  // 10000/4096 = 2.44140625 → 2.45
  EXPECT_FALSE(has_errors(p.findings));
  ASSERT_EQ(p.exports.size(), 4u);
}

TEST(Plan, KvCacheBytes) {
  // Llama-3.1-8B at 131072 tokens: 2 × 32 × 8 × 128 × 131072 × 2 B = 16 GiB.
  auto p = plan(model("llama-3.1-8b"), 131072);
  ASSERT_EQ(p.kv_cache.size(), 5u);
  EXPECT_EQ(p.kv_cache[0].dtype, "f32");
  EXPECT_DOUBLE_EQ(p.kv_cache[0].bytes, 2 * 17179869184.0);
  EXPECT_EQ(p.kv_cache[1].dtype, "f16/bf16");
  EXPECT_DOUBLE_EQ(p.kv_cache[1].bytes, 17179869184.0);
  EXPECT_DOUBLE_EQ(p.kv_cache[2].bytes, 8589934592.0);            // fp8
  EXPECT_FALSE(p.kv_cache[2].runtime);
  EXPECT_EQ(p.kv_cache[3].dtype, "q8_0");
  EXPECT_DOUBLE_EQ(p.kv_cache[3].bytes, 8589934592.0 * 34 / 32);  // q8_0
  EXPECT_DOUBLE_EQ(p.kv_cache[3].bytes_per_element, 34.0 / 32);
  EXPECT_DOUBLE_EQ(p.kv_cache[4].bytes, 8589934592.0 * 18 / 32);  // q4_0
  // Each runtime row is kv_cache_bytes — the function InferenceSession allocates by
  // (session_test: SessionAllocatesWhatKvCacheBytesPredicts).
  for (const auto& [row, type] : {std::pair{0, KvType::F32}, {1, KvType::F16}, {3, KvType::Q8_0}, {4, KvType::Q4_0}}) {
    EXPECT_TRUE(p.kv_cache[row].runtime);
    EXPECT_EQ(p.kv_cache[row].bytes, double(kv_cache_bytes(type, 32, 8, 128, 131072)));
  }
  auto ds = plan(model("deepseek-v3"), 163840);
  bool mla_note = false;
  for (const auto& n : ds.notes) mla_note |= n.find("latent") != std::string::npos;
  EXPECT_TRUE(mla_note);
}

}  // namespace
}  // namespace ropescale
