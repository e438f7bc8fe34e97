// Rules: HF validators (rope-reference.md §1.4) and pitfalls (§4).
#include "ropescale/advice/check.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "ropescale/advice/export.h"
#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/model_shape.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/rope/frequencies.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

using nlohmann::json;

std::string_view to_string(Severity s) { return s == Severity::Error ? "error" : "warning"; }

bool has_errors(const std::vector<Finding>& f) {
  return std::any_of(f.begin(), f.end(), [](const Finding& x) { return x.severity == Severity::Error; });
}

namespace {

class Checker {
 public:
  Checker(const ModelConfig& cfg, const CheckOptions& opt) : cfg_(cfg), opt_(opt) {}

  std::vector<Finding> run() {
    model_level();
    if (cfg_.rope_parameters_by_layer_type.empty()) {
      rope_dict(cfg_.rope_parameters, cfg_.rope_source, cfg_.rope_as_written);
    } else {
      for (const auto& [layer, dict] : cfg_.rope_parameters_by_layer_type)
        rope_dict(dict, "rope_parameters." + layer, cfg_.rope_as_written.value(layer, json::object()));
    }
    return std::move(out_);
  }

 private:
  const ModelConfig& cfg_;
  const CheckOptions& opt_;
  std::vector<Finding> out_;

  void add(Severity s, std::string rule, std::string key, std::string value, std::string why, std::string fix) {
    for (const auto& f : out_)
      if (f.key == key && f.rule == rule) return;
    out_.push_back({s, std::move(rule), std::move(key), std::move(value), std::move(why), std::move(fix)});
  }
  static std::string at(const std::string& src, const std::string& key) { return src + "." + key; }
  static std::string show(const json& p, const std::string& k) {
    return p.contains(k) ? safe_dump(p.at(k)).substr(0, 120) : "(missing)";
  }

  static bool plain(const json& p) {
    const RopeTypeInfo* r = rope_row_of(p);
    return r && r->type == RopeType::Default;
  }

  void model_level() {
    // The model's shape (a model file is refused before this; a config.json is judged on what it states).
    for (const auto& p : model_shape_problems(cfg_, cfg_.format != SourceFormat::HfConfig))
      add(Severity::Error, "bad-model-shape", p.key, p.value, p.key + " " + p.reason, "fix the value (the model's published config has it)");
    const std::string t = string_or(cfg_.rope_parameters, "rope_type", "default");
    const bool scaled = !plain(cfg_.rope_parameters);
    if (cfg_.alibi && scaled)
      add(Severity::Error, "alibi-with-rope-scaling", cfg_.rope_source, "\"" + t + "\"",
          "this model (" + cfg_.architecture + ") encodes positions with ALiBi biases, not rotary embeddings: a RoPE scaling setting is ignored by some engines and rejected by others",
          "remove the rope scaling; ALiBi extrapolates by construction — raise the context and measure perplexity");
    const int64_t reach =
        std::max({cfg_.max_position_embeddings, opt_.target_context.value_or(0), scaled_reach(cfg_)});
    if (cfg_.sliding_window && *cfg_.sliding_window >= reach) {
      // The window covers every position the model will see: nothing to say.
    } else if (cfg_.sliding_window && (scaled || (opt_.target_context && *opt_.target_context > *cfg_.sliding_window)))
      add(Severity::Warning, "sliding-window", "sliding_window", std::to_string(*cfg_.sliding_window),
          "each layer attends to at most " + std::to_string(*cfg_.sliding_window) +
              " earlier tokens; RoPE scaling does not widen that window, so long-range recall stays bounded",
          "treat the window as the effective context, or use a model variant without sliding-window attention");
    else if (cfg_.sliding_window && cfg_.max_position_embeddings > *cfg_.sliding_window)
      add(Severity::Warning, "sliding-window", "sliding_window", std::to_string(*cfg_.sliding_window),
          "max_position_embeddings (" + std::to_string(cfg_.max_position_embeddings) +
              ") exceeds the sliding window: attention reaches only " + std::to_string(*cfg_.sliding_window) +
              " tokens back per layer",
          "do not expect RoPE scaling to extend recall past the window");
    if (!cfg_.alibi && !scaled && cfg_.original_max_position_embeddings &&
        cfg_.max_position_embeddings > *cfg_.original_max_position_embeddings)
      add(Severity::Error, "max-position-raised-without-scaling", "max_position_embeddings",
          std::to_string(cfg_.max_position_embeddings),
          "raised above original_max_position_embeddings = " + std::to_string(*cfg_.original_max_position_embeddings) +
              " with no rope scaling: positions past the trained length get rotation angles the model never saw",
          "add a rope_scaling (e.g. yarn with factor " +
              json(static_cast<double>(cfg_.max_position_embeddings) / *cfg_.original_max_position_embeddings).dump() +
              ") or restore max_position_embeddings");
    if (!cfg_.alibi && !scaled && opt_.target_context && *opt_.target_context > cfg_.max_position_embeddings &&
        cfg_.max_position_embeddings > 0)
      add(Severity::Error, "target-beyond-trained-without-scaling", "max_position_embeddings",
          std::to_string(cfg_.max_position_embeddings),
          "the target context " + std::to_string(*opt_.target_context) +
              " exceeds the trained length and no rope scaling is set: quality collapses past the trained length",
          "run `ropescale plan FILE --target-context " + std::to_string(*opt_.target_context) + "` for a setting");
  }

  void rope_dict(const json& p, const std::string& src, const json& written) {
    if (cfg_.alibi && (!p.contains("rope_type") || plain(p))) return;  // nothing rotary to judge
    std::vector<std::string> received;
    if (written.is_object())
      for (auto it = written.begin(); it != written.end(); ++it) received.push_back(it.key());
    const bool has_type = written.is_object() && written.contains("type") && !written["type"].is_null();
    const bool has_rope_type = written.is_object() && written.contains("rope_type") && !written["rope_type"].is_null();
    if (has_type && has_rope_type && written["type"] != written["rope_type"])
      add(Severity::Error, "type-and-rope-type-disagree", at(src, "type"), safe_dump(written["type"]),
          "`type` says " + safe_dump(written["type"]) + " but `rope_type` says " + safe_dump(written["rope_type"]) +
              ": HF uses rope_type, older readers (transformers < 4.43, some converters) use type",
          "keep one key, rope_type");
    else if (has_type && has_rope_type)
      add(Severity::Warning, "type-and-rope-type", at(src, "type"), safe_dump(written["type"]),
          "both `type` and `rope_type` are set (harmless when equal; HF drops type)", "keep only rope_type");
    const json& written_type = has_rope_type ? written["rope_type"] : has_type ? written["type"] : json();
    if (written_type == "su")
      add(Severity::Warning, "legacy-su-alias", at(src, has_rope_type ? "rope_type" : "type"), "\"su\"",
          "\"su\" is the pre-release name of longrope: vLLM and transformers 4.x map it, but transformers 5.23 fails to load such a config (KeyError: missing original_max_position_embeddings)",
          "write \"longrope\"");
    else if (written_type.is_string())
      if (const RopeTypeInfo* w = find_rope_type(written_type.get<std::string>()); w && w->name != written_type.get<std::string>())
        add(Severity::Warning, "rope-type-alias", at(src, has_rope_type ? "rope_type" : "type"), safe_dump(written_type),
            safe_dump(written_type) + " is an alias ropescale accepts for \"" + std::string(w->name) +
                "\"; transformers and vLLM know only the canonical name",
            "write \"" + std::string(w->name) + "\"");
    if (!p.contains("rope_type") || !p["rope_type"].is_string()) {
      add(Severity::Error, "rope-type-not-string", at(src, "rope_type"), show(p, "rope_type"), "rope_type must be a string",
          "use one of " + rope_type_names());
      return;
    }
    const std::string t = p["rope_type"].get<std::string>();
    const RopeKeySchema schema = rope_key_schema(t);
    const RopeTypeInfo* info = rope_row_of(p);
    if (!schema.known || !info) {
      add(Severity::Error, "unknown-rope-type", at(src, "rope_type"), "\"" + t + "\"",
          "no implementation computes this rope_type (HF raises KeyError at model init)", "use one of " + rope_type_names());
      return;
    }
    for (const auto& k : schema.required)
      if (!p.contains(k) || p[k].is_null())
        add(Severity::Error, "missing-required-key", at(src, k), "(missing)",
            "rope_type '" + t + "' requires `" + k + "` (HF raises KeyError: Missing required keys)",
            "add `" + k + "`");
    std::set<std::string> allowed(schema.required.begin(), schema.required.end());
    allowed.insert(schema.optional.begin(), schema.optional.end());
    allowed.insert({"type", "partial_rotary_factor"});
    for (const auto& k : received) {
      if (allowed.count(k)) continue;
      std::string fix = "remove it; HF ignores unrecognized keys with a warning";
      if (k == "attn_factor") fix = "HF spells it `attention_factor` (attn_factor is vLLM/ggml naming): rename it";
      if (k == "extrapolation_factor") fix = "only vLLM's DeepSeek YaRN reads extrapolation_factor; HF ignores it";
      if (k == "finetuned") fix = "finetuned is informational (YaRN/GGUF); remove it";
      add(Severity::Warning, "unknown-key", at(src, k), show(p, k),
          "not a key of rope_type '" + t + "': it has no effect in HF, and other engines may read it differently", fix);
    }
    values(p, src, *info);
    pitfalls(p, src, *info);
    // Finally, anything that still prevents computing frequencies.
    try {
      ModelConfig one = cfg_;
      one.rope_parameters = p;
      one.rope_parameters_by_layer_type.clear();
      one.rope_source = src;
      if (!cfg_.alibi) (void)rope_spec_for(one);
    } catch (const ConfigError& e) {
      bool dup = false;
      for (const auto& f : out_) dup |= f.severity == Severity::Error && f.key == e.key();
      if (!dup) add(Severity::Error, "invalid-value", e.key(), e.value(), e.reason(), "fix the value");
    }
  }

  std::optional<double> num(const json& p, const std::string& k, const std::string& src) {
    if (!p.contains(k) || p[k].is_null()) return std::nullopt;
    if (!p[k].is_number() || p[k].is_boolean()) {
      add(Severity::Error, "wrong-type", at(src, k), show(p, k), "must be a number", "write a plain JSON number");
      return std::nullopt;
    }
    return p[k].get<double>();
  }

  void values(const json& p, const std::string& src, const RopeTypeInfo& info) {
    if (auto th = num(p, "rope_theta", src); th && !theta_problem(*th).empty())
      add(Severity::Error, "bad-rope-theta", at(src, "rope_theta"), show(p, "rope_theta"), "the RoPE base " + theta_problem(*th),
          "use the model's published rope_theta (10000, 500000, 1e6 …)");
    if (auto prf = num(p, "partial_rotary_factor", src); prf && !(*prf > 0 && *prf <= 1))
      add(Severity::Error, "bad-partial-rotary-factor", at(src, "partial_rotary_factor"), show(p, "partial_rotary_factor"),
          "must be in (0, 1]", "use the fraction of head_dim that is rotated");
    if (auto f = num(p, "factor", src)) {
      if (!std::isfinite(*f) || *f <= 0)
        add(Severity::Error, "bad-factor", at(src, "factor"), show(p, "factor"),
            "the scaling factor must be a finite number > 0 (it divides frequencies)", "use target_context / original context, e.g. 4.0");
      else if (*f < 1)
        add(Severity::Warning, "factor-below-one", at(src, "factor"), show(p, "factor"),
            "factor < 1 compresses the usable context (HF warns: factor should be >= 1)", "use a factor >= 1");
      else if (*f > kMaxFactor)
        add(Severity::Error, "absurd-factor", at(src, "factor"), show(p, "factor"),
            "a factor above 1e6 stretches positions past any context a model can hold",
            "use target_context / original context (published models use 2 to 64)");
      else if (*f > 1024)
        add(Severity::Warning, "large-factor", at(src, "factor"), show(p, "factor"),
            "a factor above 1024 leaves most rotary pairs almost constant; no published model uses one",
            "check the value (target_context / original context)");
    }
    if (auto a = num(p, "attention_factor", src); a && !(std::isfinite(*a) && *a >= 0))
      add(Severity::Error, "bad-attention-factor", at(src, "attention_factor"), show(p, "attention_factor"),
          "must be a finite number >= 0 (it multiplies cos and sin)", "remove it to use the default temperature");
    if (p.contains("original_max_position_embeddings") && !p["original_max_position_embeddings"].is_null()) {
      const json& v = p["original_max_position_embeddings"];
      if (!v.is_number_integer() && !(v.is_number_float() && v.get<double>() == std::floor(v.get<double>())))
        add(Severity::Error, "wrong-type", at(src, "original_max_position_embeddings"), show(p, "original_max_position_embeddings"),
            "must be an integer number of tokens", "write the pre-extension context length, e.g. 8192");
      else if (v.get<double>() <= 0)
        add(Severity::Error, "bad-original-length", at(src, "original_max_position_embeddings"), show(p, "original_max_position_embeddings"),
            "must be > 0", "write the pre-extension context length, e.g. 8192");
    }
    if (find_param(info, "beta_fast")) {
      auto bf = num(p, "beta_fast", src), bs = num(p, "beta_slow", src);
      const double f = bf && *bf != 0 ? *bf : 32, s = bs && *bs != 0 ? *bs : 1;
      if (f < s)
        add(Severity::Warning, "beta-order", at(src, "beta_fast"), json(f).dump(),
            "beta_fast (" + json(f).dump() + ") < beta_slow (" + json(s).dump() + "): the ramp runs backwards (HF warns)",
            "the usual values are beta_fast 32, beta_slow 1");
      if ((bf && *bf == 0) || (bs && *bs == 0))
        add(Severity::Warning, "beta-zero", at(src, bf && *bf == 0 ? "beta_fast" : "beta_slow"), "0",
            "HF reads `get(beta) or default`, so 0 silently becomes the default (32 / 1), while other engines use 0",
            "write the value you mean explicitly");
      if (p.contains("truncate") && !p["truncate"].is_null() && !p["truncate"].is_boolean())
        add(Severity::Error, "wrong-type", at(src, "truncate"), show(p, "truncate"), "must be true or false", "write true or false");
    }
    // Per-pair lists (LongRoPE's factors): one finite positive number per rotary pair.
    const int pairs = cfg_.rotary_dim() / 2;
    for (const RopeParam& rp : info.params) {
      const std::string k(rp.key);
      if (rp.kind != ParamKind::PairList || !p.contains(k) || !p[k].is_array()) continue;
      const json& a = p[k];
      if (static_cast<int>(a.size()) != pairs)
        add(Severity::Error, "longrope-factor-length", at(src, k), "list of " + std::to_string(a.size()),
            "LongRoPE needs one factor per rotary pair: rotary_dim/2 = " + std::to_string(pairs) +
                " (HF warns and then fails with a shape error)",
            "use the factor list published for this head size");
      for (size_t i = 0; i < a.size(); ++i)
        if (!a[i].is_number() || a[i].is_boolean() || !(a[i].get<double>() > 0) || !std::isfinite(a[i].get<double>())) {
          add(Severity::Error, "longrope-factor-value", at(src, k) + "[" + std::to_string(i) + "]", safe_dump(a[i]),
              "every LongRoPE factor must be a finite number > 0 (it divides a frequency)", "fix the list");
          break;
        }
    }
    if (info.type == RopeType::LongRope) {
      if (!p.contains("factor"))
        add(Severity::Warning, "longrope-missing-factor", at(src, "factor"), "(missing)",
            "without `factor`, HF derives it from max_position_embeddings / original_max_position_embeddings for the attention factor",
            "set factor explicitly (HF recommends it)");
    }
    if (find_param(info, "low_freq_factor")) {
      auto lo = num(p, "low_freq_factor", src), hi = num(p, "high_freq_factor", src);
      if (lo && hi && *hi < *lo)
        add(Severity::Warning, "llama3-band-order", at(src, "high_freq_factor"), show(p, "high_freq_factor"),
            "high_freq_factor must exceed low_freq_factor (HF warns); the smoothing band is inverted",
            "Llama 3.1 uses low_freq_factor 1, high_freq_factor 4");
      if (lo && hi && *hi == *lo)
        add(Severity::Warning, "llama3-empty-band", at(src, "high_freq_factor"), show(p, "high_freq_factor"),
            "low_freq_factor == high_freq_factor leaves no smoothing band; the smooth term is 0/0 (HF masks it, vLLM sets 0, naive code gives NaN)",
            "fine for Llama-4-style configs; ropescale guards the division");
      if (auto L = num(p, "original_max_position_embeddings", src);
          L && cfg_.max_position_embeddings > 0 && *L >= cfg_.max_position_embeddings)
        add(Severity::Warning, "llama3-original-not-below-max", at(src, "original_max_position_embeddings"),
            show(p, "original_max_position_embeddings"),
            "original_max_position_embeddings should be below max_position_embeddings (" +
                std::to_string(cfg_.max_position_embeddings) + "), HF warns",
            "set max_position_embeddings to factor × original length");
    }
  }

  void pitfalls(const json& p, const std::string& src, const RopeTypeInfo& info) {
    const std::string t(info.name);
    std::optional<double> factor, L;
    if (p.contains("factor") && p["factor"].is_number()) factor = p["factor"].get<double>();
    if (p.contains("original_max_position_embeddings") && p["original_max_position_embeddings"].is_number())
      L = p["original_max_position_embeddings"].get<double>();
    const double maxpos = static_cast<double>(cfg_.max_position_embeddings);
    // §4.5: explicit factor vs max_position_embeddings / original length.
    const RopeParam* factor_param = find_param(info, "factor");
    const bool factor_from_lengths = factor_param && factor_param->when_missing == ParamDefault::LengthRatio;
    if (factor_from_lengths && info.reach_scales_with_factor && factor && L && *L > 0 && maxpos > 0) {
      const double implicit = maxpos / *L;
      if (std::abs(implicit - *factor) > 1e-9 * *factor && implicit != 1.0)
        add(Severity::Warning, "factor-length-mismatch", at(src, "factor"), json(*factor).dump(),
            "max_position_embeddings / original_max_position_embeddings = " + json(maxpos).dump() + " / " + json(*L).dump() +
                " = " + json(implicit).dump() + " disagrees with factor " + json(*factor).dump() +
                ": HF 4.48–4.55 silently used the ratio (transformers#38224), engines size their context from one or the other",
            "set max_position_embeddings = factor × original_max_position_embeddings (" + json(*factor * *L).dump() + ")");
    }
    // §4.3 / §4.4: YaRN magnitude configured twice, or a lone mscale.
    if (find_param(info, "mscale")) {
      const bool af = p.contains("attention_factor") && !p["attention_factor"].is_null();
      const bool ms = p.contains("mscale") && !p["mscale"].is_null();
      const bool msa = p.contains("mscale_all_dim") && !p["mscale_all_dim"].is_null();
      if (af && (ms || msa))
        add(Severity::Warning, "yarn-magnitude-twice", at(src, "attention_factor"), show(p, "attention_factor"),
            "both attention_factor and mscale/mscale_all_dim set the YaRN magnitude: HF uses attention_factor alone, some engines multiply both (TensorRT-LLM#16379, sglang#33558)",
            "keep one of them");
      if (ms != msa)
        add(Severity::Warning, "yarn-lone-mscale", at(src, ms ? "mscale" : "mscale_all_dim"), show(p, ms ? "mscale" : "mscale_all_dim"),
            "HF applies the mscale ratio only when both mscale and mscale_all_dim are set (else 0.1·ln(s)+1); vLLM's DeepSeek path uses a lone mscale — the engines disagree",
            "set both mscale and mscale_all_dim, or neither");
      if (p.contains("truncate") && p["truncate"] == false)
        add(Severity::Warning, "yarn-truncate-false", at(src, "truncate"), "false",
            "unrounded correction range (gpt-oss): llama.cpp/ggml always floors/ceils it, so GGUF conversions differ slightly",
            "expected for gpt-oss; compare with `ropescale freqs --convention ggml`");
    }
    // Static scaling hurts short prompts (Qwen model cards, §4.8).
    const bool finetuned = p.contains("finetuned") && p["finetuned"] == true;
    if (info.length_following_variant && factor && *factor > 1 && !finetuned) {
      const std::string dyn(to_string(*info.length_following_variant));
      add(Severity::Warning, "static-scaling-short-prompts", at(src, "rope_type"), "\"" + t + "\"",
          "a static factor " + json(*factor).dump() +
              " applies to every prompt, also short ones, and degrades them (Qwen: add rope scaling only when needed)",
          "serve long prompts only with it, or use the length-following variant `" + dyn + "`");
    }
    // §4.1 / §4.2: dynamic NTK semantics differ between engines.
    if (info.type == RopeType::Dynamic) {
      add(Severity::Warning, "dynamic-not-portable", at(src, "rope_type"), "\"dynamic\"",
          "dynamic NTK is static in vLLM (vllm#3488), absent in llama.cpp, and in HF keys already in the KV cache keep the base they were written with (transformers#25104)",
          "for serving outside HF, pin a static setting (`ropescale export --to vllm|llama.cpp` says which)");
      if (cfg_.original_max_position_embeddings && *cfg_.original_max_position_embeddings < cfg_.max_position_embeddings)
        add(Severity::Warning, "dynamic-uses-max-position", "max_position_embeddings", std::to_string(cfg_.max_position_embeddings),
            "HF's dynamic NTK scales relative to max_position_embeddings, not original_max_position_embeddings (" +
                std::to_string(*cfg_.original_max_position_embeddings) + "): scaling starts late",
            "set max_position_embeddings to the trained length for dynamic NTK");
    }
    if (info.type == RopeType::LongRope && cfg_.format == SourceFormat::HfConfig)
      add(Severity::Warning, "longrope-switch", at(src, "rope_type"), "\"longrope\"",
          "short/long factors switch at original_max_position_embeddings: keys cached before the switch were rotated with the short factors (transformers PR #33129); llama.cpp and vLLM pick one list per context size (llama.cpp#8995)",
          "re-prefill when a sequence crosses the original length (ropescale runtime does), or expect a drop at the switch");
    // Target beyond what the configured scaling reaches.
    if (opt_.target_context && factor && L && info.reach_scales_with_factor && !info.length_dependent) {
      const double reach = *factor * *L;
      if (*opt_.target_context > reach * 1.0000001)
        add(Severity::Warning, "target-beyond-scaled-reach", at(src, "factor"), json(*factor).dump(),
            "target context " + std::to_string(*opt_.target_context) + " exceeds factor × original length = " + json(reach).dump(),
            "raise factor to " + json(static_cast<double>(*opt_.target_context) / *L).dump());
    }
  }
};

}  // namespace

std::vector<Finding> check_config(const ModelConfig& cfg, const CheckOptions& options) {
  return Checker(cfg, options).run();
}

}  // namespace ropescale
