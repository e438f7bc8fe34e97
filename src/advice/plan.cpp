#include "ropescale/advice/plan.h"

#include <cmath>

#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/kernels/kv_storage.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

using nlohmann::json;

std::vector<KvCacheSize> kv_cache_sizes(const ModelConfig& cfg, int64_t tokens) {
  const double elements = 2.0 * static_cast<double>(cfg.num_hidden_layers) * static_cast<double>(cfg.num_key_value_heads) *
                          static_cast<double>(cfg.head_dim) * static_cast<double>(tokens);
  std::vector<KvCacheSize> out;
  const auto add = [&](const std::string& name, KvType type) {  // bytes as InferenceSession allocates them
    if (!kv_type_fits(type, static_cast<int>(cfg.head_dim))) return;
    const double bytes = static_cast<double>(kv_cache_bytes(type, static_cast<int>(cfg.num_hidden_layers),
                                                            static_cast<int>(cfg.num_key_value_heads), static_cast<int>(cfg.head_dim), tokens));
    out.push_back({name, elements > 0 ? bytes / elements : 0.0, bytes, true});
  };
  add("f32", KvType::F32);
  add("f16/bf16", KvType::F16);
  // fp8 (vLLM's kv_cache_dtype): one byte an element; ropescale's runtime has no fp8 cache.
  out.push_back({"fp8", 1.0, elements, false});
  add("q8_0", KvType::Q8_0);  // 32 int8 + an f16 scale per block: 34/32 bytes an element
  add("q4_0", KvType::Q4_0);  // 32 4-bit values + an f16 scale: 18/32
  return out;
}

namespace {

// Factors read better rounded up to two decimals (4096→10000 gives 2.45, not 2.44140625).
double round_factor(double r) {
  const double c = std::ceil(r * 100.0 - 1e-9) / 100.0;
  return std::abs(r - std::round(r)) < 1e-9 ? std::round(r) : c;
}

}  // namespace

Plan make_plan(const ModelConfig& cfg, const PlanOptions& o) {
  if (o.target_context < 1)
    throw_invalid(cfg.path, "--target-context", std::to_string(o.target_context), "must be a positive number of tokens");
  Plan plan;
  plan.target_context = o.target_context;
  plan.trained_context = cfg.trained_context();
  plan.native_context = std::max(cfg.max_position_embeddings, scaled_reach(cfg));
  plan.ratio = plan.trained_context > 0 ? static_cast<double>(o.target_context) / plan.trained_context : 0.0;
  plan.kv_cache = kv_cache_sizes(cfg, o.target_context);
  if (cfg.head_dim % kQuantBlock != 0)
    plan.notes.push_back("head_dim " + std::to_string(cfg.head_dim) + " is not a multiple of " + std::to_string(kQuantBlock) +
                         ": q8_0 / q4_0 KV caches (ggml's 32-value blocks) do not apply");
  if (cfg.uses_mla)
    plan.notes.push_back("multi-head latent attention (DeepSeek) caches a compressed latent: the real KV cache is far smaller than this formula");

  const RopeTypeInfo* current_info = rope_row_of(cfg.rope_parameters);
  const RopeType current = current_info ? current_info->type : RopeType::Default;
  ModelConfig planned = cfg;

  if (cfg.alibi) {
    plan.method = "not-rope-scaling";
    plan.reason = "the model uses ALiBi position biases: there are no rotary frequencies to rescale. ALiBi extrapolates by "
                  "construction; raise the context and measure perplexity at the target length";
    plan.rope_scaling = json();
  } else if (cfg.sliding_window && o.target_context > *cfg.sliding_window) {
    plan.method = "not-rope-scaling";
    plan.reason = "the model attends through a sliding window of " + std::to_string(*cfg.sliding_window) +
                  " tokens: relative positions never exceed the window, so RoPE scaling neither helps nor is needed; "
                  "recall beyond the window stays limited whatever the context";
    plan.rope_scaling = json();
  } else if (o.target_context <= plan.native_context) {
    plan.method = rope_type_info(RopeType::Default).shorthand;
    plan.reason = "the target fits the model's native context (" + std::to_string(plan.native_context) +
                  " tokens as configured): keep the current setting";
    plan.rope_scaling = current == RopeType::Default ? json() : cfg.rope_parameters;
  } else {
    const double r = round_factor(plan.ratio);
    json rs;
    if (current == RopeType::LongRope) {
      plan.method = to_string(RopeType::LongRope);
      plan.needs_finetune = true;
      plan.reason = "LongRoPE factors are searched for one target length: beyond " + std::to_string(plan.native_context) +
                    " tokens new factors must be calibrated (and usually fine-tuned); the current setting is kept";
      rs = cfg.rope_parameters;
    } else if (current == RopeType::Llama3) {
      plan.method = to_string(RopeType::Llama3);
      plan.needs_finetune = r > 2.0 * number_or(cfg.rope_parameters, "factor", 1.0);
      rs = cfg.rope_parameters;
      rs["factor"] = r;
      plan.reason = "keep the model's own llama3 scaling and raise its factor to " + json(r).dump() + " (target / original " +
                    std::to_string(plan.trained_context) + ")";
    } else if (o.mixed_traffic && r <= 4.0) {
      plan.method = to_string(RopeType::Dynamic);
      rs = rope_dict_for(rope_type_info(RopeType::Dynamic), r, plan.trained_context);
      plan.reason = "short and long prompts both matter and the target is ≤4× the trained length: dynamic NTK leaves prompts "
                    "within the trained length exactly as trained and rescales only longer ones";
      plan.notes.push_back("vLLM and llama.cpp cannot run dynamic NTK (see the exports); the ropescale runtime and HF can");
    } else {
      plan.method = to_string(RopeType::Yarn);
      rs = rope_dict_for(rope_type_info(RopeType::Yarn), r, plan.trained_context);
      if (o.mixed_traffic) plan.notes.push_back("for mixed traffic ropescale's runtime offers dynamic_yarn (YaRN whose factor follows the prompt length)");
      if (r <= 4.0 && !o.will_finetune) {
        plan.reason = "target ≤4× the trained length without fine-tuning: YaRN zero-shot (NTK-by-parts + attention temperature) "
                      "holds perplexity best among training-free methods (YaRN paper, Table 1; NTK-aware is the runner-up)";
      } else if (r < 8.0) {
        plan.needs_finetune = true;
        plan.reason = "target " + json(r).dump() + "× the trained length: YaRN, and a short fine-tune at the target length is "
                      "recommended (YaRN paper: 400 steps suffice)";
      } else {
        plan.needs_finetune = true;
        plan.reason = "target ≥8× the trained length: YaRN plus a short fine-tune at the extended length (YaRN paper: "
                      "~400 steps); zero-shot methods degrade sharply this far out";
      }
    }
    plan.rope_scaling = rs;
    if (!rs.is_null()) apply_rope_setting(planned, rs, "rope_scaling");
    planned.max_position_embeddings = o.target_context;
    planned.original_max_position_embeddings.reset();
  }

  if (!cfg.alibi) {
    for (auto t : {ExportTarget::HF, ExportTarget::HFv5, ExportTarget::VLLM, ExportTarget::LlamaCpp})
      plan.exports.push_back(export_setting(planned, t, o.target_context));
  }
  CheckOptions co;
  co.target_context = o.target_context;
  plan.findings = check_config(planned, co);
  return plan;
}

}  // namespace ropescale
