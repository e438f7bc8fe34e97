// One setting, four targets. Engine behaviour per rope-reference.md §2 (llama.cpp)
// and §3 (vLLM); HF per §1.
#include "ropescale/advice/export.h"

#include <cmath>
#include <sstream>

#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/rope/frequencies.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale {

using nlohmann::json;

std::string_view to_string(ExportTarget t) {
  switch (t) {
    case ExportTarget::HF: return "hf";
    case ExportTarget::HFv5: return "hf-v5";
    case ExportTarget::VLLM: return "vllm";
    case ExportTarget::LlamaCpp: return "llama.cpp";
  }
  return "?";
}

std::optional<ExportTarget> parse_export_target(std::string_view s) {
  if (s == "hf") return ExportTarget::HF;
  if (s == "hf-v5" || s == "hf5") return ExportTarget::HFv5;
  if (s == "vllm") return ExportTarget::VLLM;
  if (s == "llama.cpp" || s == "llamacpp" || s == "gguf") return ExportTarget::LlamaCpp;
  return std::nullopt;
}

namespace {

// Shortest decimal that reads back as the same double.
std::string num(double x) {
  if (x == std::floor(x) && std::abs(x) < 1e15) {
    std::ostringstream o;
    o << static_cast<int64_t>(x);
    return x == 0 ? "0" : o.str() + (std::abs(x) < 1e6 ? ".0" : "");
  }
  for (int prec = 6; prec <= 17; ++prec) {
    std::ostringstream o;
    o.precision(prec);
    o << x;
    if (std::stod(o.str()) == x) return o.str();
  }
  std::ostringstream o;
  o.precision(17);
  o << x;
  return o.str();
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string join_args(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = a.find_first_of(" '\"{}[]$\\") == std::string::npos;
    out += plain ? a : shell_quote(a);
  }
  return out;
}

// The registry row's word on the target: only Exact rows start out exact; what
// a spec adds (truncate=false, freq divisors) can only take exactness away.
bool starts_exact(const RopeSpec& spec, EngineSupport RopeTypeInfo::*engine) {
  return rope_type_info(spec.type).*engine == EngineSupport::Exact;
}

// The dict without rope_theta/partial_rotary_factor (they live at top level in legacy HF).
json scaling_only(const json& p) {
  json s = p;
  s.erase("rope_theta");
  s.erase("partial_rotary_factor");
  return s;
}

// LongRoPE's attention factor within the original length and beyond it.
std::pair<double, double> longrope_attention_factors(const RopeSpec& spec) {
  const int64_t L = spec.original_max_position;
  return {compute_frequencies(spec, L).attention_factor, compute_frequencies(spec, L + 1).attention_factor};
}

struct Setting {
  RopeSpec spec;
  json params;         // standardized dict
  int64_t context = 0; // serving context
};

// A static YaRN dict reaching `context` from the spec's original length
// (the closest static stand-in for dynamic_yarn).
json static_yarn_for(const Setting& s) {
  const double f = std::max(1.0, static_cast<double>(s.context) / s.spec.original_max_position);
  json y = rope_dict_for(rope_type_info(RopeType::Yarn), f, s.spec.original_max_position);
  if (s.spec.beta_fast != 32) y["beta_fast"] = s.spec.beta_fast;
  if (s.spec.beta_slow != 1) y["beta_slow"] = s.spec.beta_slow;
  return y;
}

// Scaling dict and rope_theta that HF / vLLM understand for this setting.
std::pair<json, double> hf_expressible(const Setting& s, ExportResult& r, const char* who) {
  const RopeType t = s.spec.type;
  json sc = scaling_only(s.params);
  double theta = s.spec.theta;
  if (t == RopeType::Ntk) {
    theta = ntk_theta(s.spec.theta, s.spec.factor, s.spec.rotary_dim);
    sc = json();
    r.notes.push_back(std::string(who) + " has no fixed NTK-aware type; the same frequencies come from rope_theta = " +
                      num(theta) + " (b·s^(d/(d−2))) with no rope scaling");
  } else if (t == RopeType::DynamicYarn) {
    sc = static_yarn_for(s);
    r.notes.push_back(std::string(who) + " has no dynamic YaRN: this is static YaRN at factor " +
                      num(sc["factor"].get<double>()) + ", which also rescales short prompts");
  } else if (t == RopeType::Default) {
    sc = json();
  } else if (!rope_type_info(t).hf_has_type) {
    r.exact = false;
    r.notes.push_back(std::string(who) + " has no rope_type '" + std::string(to_string(t)) +
                      "': only ropescale reads this dict as written");
  }
  if (!s.spec.freq_divisors.empty()) {
    r.exact = false;
    r.notes.push_back("the model's per-pair rope_freqs divisors (GGUF tensor) have no " + std::string(who) +
                      " key; write the original HF rope_scaling (e.g. llama3) instead");
  }
  return {sc, theta};
}

ExportResult to_hf(const Setting& s, const ModelConfig& cfg, bool v5) {
  ExportResult r;
  r.target = v5 ? ExportTarget::HFv5 : ExportTarget::HF;
  r.exact = starts_exact(s.spec, &RopeTypeInfo::hf);
  auto [sc, theta] = hf_expressible(s, r, "Hugging Face");
  if (v5) {
    json rp = sc.is_null() ? rope_dict_for(rope_type_info(RopeType::Default), std::nullopt, 0) : sc;
    rp["rope_theta"] = theta;
    if (s.params.contains("partial_rotary_factor")) rp["partial_rotary_factor"] = s.params["partial_rotary_factor"];
    r.data = {{"rope_parameters", rp}, {"max_position_embeddings", s.context}};
  } else {
    r.data = {{"rope_scaling", sc}, {"rope_theta", theta}, {"max_position_embeddings", s.context}};
    if (s.spec.type == RopeType::Llama3)
      r.notes.push_back("transformers < 4.43 rejects llama3 rope_scaling (\"must be a dictionary with two fields, type and factor\"): upgrade");
    if (cfg.original_max_position_embeddings && s.spec.type == RopeType::LongRope)
      r.notes.push_back("Phi-3 configs also keep original_max_position_embeddings at top level; HF lets it overwrite the dict value");
  }
  if (s.spec.type == RopeType::LongRope) {
    const auto [short_af, long_af] = longrope_attention_factors(s.spec);
    if (short_af != long_af) {
      r.exact = false;
      r.notes.push_back("transformers' longrope (Llama, Phi-3) multiplies cos/sin by attention_factor = " + num(long_af) +
                        " at every length and ignores short_mscale = " + num(short_af) +
                        ": short prompts get the long regime's factor there (HF's PhiMoE and vLLM read both keys)");
    }
  }
  if (s.spec.type == RopeType::Dynamic)
    r.notes.push_back("HF dynamic NTK rotates each key once with the base in force when it was cached (transformers#25104)");
  r.text = r.data.dump(2);
  return r;
}

ExportResult to_vllm(const Setting& s) {
  ExportResult r;
  r.target = ExportTarget::VLLM;
  r.exact = starts_exact(s.spec, &RopeTypeInfo::vllm);
  auto [sc, theta] = hf_expressible(s, r, "vLLM");
  if (s.spec.type == RopeType::LongRope) {
    // vLLM's Phi3LongRoPE takes each regime's factor as short_mscale / long_mscale and ignores attention_factor
    // (it would use sqrt(1 + ln s / ln L) for both): both written out.
    const auto [short_af, long_af] = longrope_attention_factors(s.spec);
    sc["short_mscale"] = short_af;
    sc["long_mscale"] = long_af;
  }
  json overrides = {{"rope_theta", theta}};
  if (!sc.is_null()) overrides["rope_scaling"] = sc;
  if (s.params.contains("partial_rotary_factor")) overrides["partial_rotary_factor"] = s.params["partial_rotary_factor"];
  const std::vector<std::string> argv = {"--hf-overrides", overrides.dump(), "--max-model-len", std::to_string(s.context)};
  r.data = argv;
  r.text = join_args(argv);
  std::vector<std::string> legacy = {"--rope-theta", num(theta)};
  if (!sc.is_null()) legacy = {"--rope-scaling", sc.dump(), "--rope-theta", num(theta)};
  legacy.push_back("--max-model-len");
  legacy.push_back(std::to_string(s.context));
  r.notes.push_back("vLLM versions with the older flags: " + join_args(legacy));
  switch (s.spec.type) {
    case RopeType::Dynamic:
      r.notes.push_back("vLLM's dynamic NTK is static: one base for max_model_len, also for short prompts (vllm#3488, #5093)");
      break;
    case RopeType::LongRope:
      r.notes.push_back("vLLM chooses long factors once at start-up when --max-model-len > " +
                        std::to_string(s.spec.original_max_position) + ", so short prompts use them too");
      break;
    case RopeType::Yarn:
      if (s.spec.attention_factor || (s.spec.mscale && s.spec.mscale_all_dim))
        r.notes.push_back("some vLLM versions drop an explicit attention_factor or mscale pair (vllm PR #46280, #48623): check the magnitude it logs");
      if (!s.spec.truncate) r.notes.push_back("truncate=false needs vLLM with PR #28244 (gpt-oss support)");
      break;
    default:
      break;
  }
  return r;
}

ExportResult to_llama_cpp(const Setting& s) {
  ExportResult r;
  r.target = ExportTarget::LlamaCpp;
  r.exact = starts_exact(s.spec, &RopeTypeInfo::llama_cpp);
  std::vector<std::string> argv;
  const RopeSpec& sp = s.spec;
  auto add = [&](const std::string& flag, const std::string& value) {
    argv.push_back(flag);
    argv.push_back(value);
  };
  switch (sp.type) {
    case RopeType::Default:
      add("--rope-scaling", std::string(rope_type_info(sp.type).ggml_name));
      break;
    case RopeType::Linear:
      add("--rope-scaling", std::string(rope_type_info(sp.type).ggml_name));
      add("--rope-scale", num(sp.factor));
      break;
    case RopeType::Ntk:
      add("--rope-freq-base", num(ntk_theta(sp.theta, sp.factor, sp.rotary_dim)));
      r.notes.push_back("NTK-aware scaling in llama.cpp is a base change: --rope-freq-base b·s^(d/(d−2))");
      break;
    case RopeType::Dynamic: {
      const double b = dynamic_ntk_theta(sp, s.context);
      add("--rope-freq-base", num(b));
      r.notes.push_back("llama.cpp has no dynamic NTK: this pins the base dynamic NTK reaches at " +
                        std::to_string(s.context) + " tokens, for every prompt");
      break;
    }
    case RopeType::Yarn:
    case RopeType::DynamicYarn: {
      const double f = sp.type == RopeType::Yarn ? sp.factor : std::max(1.0, double(s.context) / sp.original_max_position);
      add("--rope-scaling", std::string(rope_type_info(RopeType::Yarn).ggml_name));
      add("--rope-scale", num(f));
      add("--yarn-orig-ctx", std::to_string(sp.original_max_position));
      if (sp.beta_fast != 32) add("--yarn-beta-fast", num(sp.beta_fast));
      if (sp.beta_slow != 1) add("--yarn-beta-slow", num(sp.beta_slow));
      if (sp.type == RopeType::DynamicYarn) {
        r.notes.push_back("llama.cpp has no dynamic YaRN: static YaRN at factor " + num(f));
      }
      // HF's magnitude vs ggml's built-in 1+0.1·ln(s).
      RopeSpec hf = sp;
      hf.convention = Convention::HF;
      hf.factor = f;
      if (sp.type == RopeType::DynamicYarn) hf.type = RopeType::Yarn;
      const double want = compute_frequencies(hf).attention_factor;
      const double builtin = 1.0 + 0.1 * std::log(f);
      if (std::abs(want - builtin) > 1e-12 * builtin) {
        add("--yarn-attn-factor", num(want / builtin));
        r.notes.push_back("HF's attention factor is " + num(want) + "; ggml multiplies --yarn-attn-factor by its built-in " +
                          num(builtin) + " (llama.cpp before PR #17945). Newer llama.cpp ignores this flag for YaRN (measured with llama-cpp-python 0.3.36's "
                          "llama.cpp: perplexity unchanged) and multiplies its own magnitude by the GGUF key <arch>.rope.scaling.attn_factor "
                          "instead: pass --override-kv llama.rope.scaling.attn_factor=float:" + num(want / builtin) +
                          " (for a file without rope.scaling.yarn_log_multiplier), or use a GGUF from `ropescale convert`, which carries it");
      }
      if (!sp.truncate) {
        r.exact = false;
        r.notes.push_back("ggml cannot express truncate=false: it always floors/ceils the correction range (gpt-oss corr dims 8.09/17.40 become 8/18)");
      }
      break;
    }
    case RopeType::LongRope:
      r.notes.push_back("LongRoPE has no flags: the GGUF must carry rope_factors_long/short.weight (convert_hf_to_gguf.py writes them) and rope.scaling.attn_factor");
      r.notes.push_back("llama.cpp uses the long factors whenever -c exceeds " + std::to_string(sp.original_max_position) +
                        ", for short prompts too (llama.cpp#8995)");
      break;
    case RopeType::Llama3:
      r.notes.push_back("llama3 scaling has no flags: the GGUF must carry the rope_freqs.weight tensor (convert_hf_to_gguf.py writes it, llama.cpp PR #8676); without it long-context quality collapses");
      break;
    default:  // a type without llama.cpp flags of its own: what its registry row says the GGUF carries
      if (rope_type_info(sp.type).gguf == GgufEncoding::FreqsTensor)
        r.notes.push_back(std::string(to_string(sp.type)) + " has no llama.cpp flags: the GGUF must carry its per-pair divisors as "
                          "the rope_freqs.weight tensor (`ropescale convert` writes it)");
      else
        r.notes.push_back("llama.cpp cannot express " + std::string(to_string(sp.type)) + ": the file runs there as plain RoPE");
      break;
  }
  add("-c", std::to_string(s.context));
  r.data = argv;
  r.text = join_args(argv);
  return r;
}

}  // namespace

int64_t scaled_reach(const ModelConfig& cfg) {
  const json& p = cfg.rope_parameters;
  const RopeTypeInfo* info = rope_row_of(p);
  if (info && info->reach_scales_with_factor && p.contains("factor") && p["factor"].is_number() &&
      p.contains("original_max_position_embeddings") && p["original_max_position_embeddings"].is_number()) {
    const double reach = p["factor"].get<double>() * p["original_max_position_embeddings"].get<double>();
    // Absurd factors (check reports them) must not overflow the conversion.
    if (!(reach > 0)) return cfg.max_position_embeddings;
    return reach >= static_cast<double>(kMaxContext) ? kMaxContext : static_cast<int64_t>(std::llround(reach));
  }
  return cfg.max_position_embeddings;
}

ExportResult export_setting(const ModelConfig& cfg, ExportTarget target, std::optional<int64_t> target_context) {
  Setting s{rope_spec_for(cfg), cfg.rope_parameters, target_context.value_or(0)};
  if (!target_context) s.context = std::max(scaled_reach(cfg), cfg.max_position_embeddings);
  if (s.context <= 0) throw_invalid(cfg.path, "max_position_embeddings", std::to_string(s.context), "need a context length: pass --target-context");
  switch (target) {
    case ExportTarget::HF: return to_hf(s, cfg, false);
    case ExportTarget::HFv5: return to_hf(s, cfg, true);
    case ExportTarget::VLLM: return to_vllm(s);
    case ExportTarget::LlamaCpp: return to_llama_cpp(s);
  }
  return {};
}

}  // namespace ropescale
