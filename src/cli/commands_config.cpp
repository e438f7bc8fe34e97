// inspect · freqs · check · export · plan
#include <cmath>
#include <memory>
#include <optional>

#include <fmt/core.h>

#include "commands.h"
#include "runtime_flags.h"
#include "output.h"
#include "ropescale/advice/check.h"
#include "ropescale/advice/export.h"
#include "ropescale/advice/plan.h"
#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/model_config.h"
#include "ropescale/model/tokenizer_report.h"
#include "ropescale/rope/alibi.h"
#include "ropescale/rope/frequencies.h"

namespace ropescale::cli {

using nlohmann::json;

namespace {

struct CommonOptions {
  std::string file;
  std::string rope_scaling;  // vLLM-style override JSON
  std::string convention;    // hf | ggml (empty: the file's own)
  bool json = false;
};

void add_rope_scaling_option(CLI::App* c, CommonOptions& o) {
  c->add_option("--rope-scaling", o.rope_scaling,
                "Override the model's scaling with the JSON you would pass to vLLM, e.g. "
                "'{\"rope_type\":\"yarn\",\"factor\":4,\"original_max_position_embeddings\":8192}'")->transform(rope_scaling_argument());
}

ModelConfig load(const CommonOptions& o) {
  ModelConfig cfg = load_model_config(o.file);
  if (!o.rope_scaling.empty()) apply_rope_override(cfg, o.rope_scaling);
  if (!o.convention.empty()) {
    auto c = parse_convention(o.convention);
    if (!c) throw_unreadable("--convention", "'" + o.convention + "' is not one of hf, ggml");
    cfg.convention = *c;
  }
  return cfg;
}

json spec_json(const RopeSpec& s, const RopeFrequencies& f, std::optional<int64_t> seq_len) {
  json j = {{"rope_type", to_string(s.type)},
            {"rotary_dim", s.rotary_dim},
            {"head_dim", s.head_dim},
            {"rope_theta", s.theta},
            {"effective_theta", f.effective_theta},
            {"factor", s.factor},
            {"effective_factor", f.effective_factor},
            {"attention_factor", f.attention_factor},
            {"layout", to_string(s.layout)},
            {"convention", to_string(s.convention)},
            {"inv_freq", f.inv_freq}};
  if (seq_len) j["seq_len"] = *seq_len;
  if (s.original_max_position) j["original_max_position_embeddings"] = s.original_max_position;
  if (s.max_position) j["max_position_embeddings"] = s.max_position;
  if (s.type == RopeType::LongRope) j["uses_long_factors"] = f.uses_long_factors;
  if (s.type == RopeType::Yarn || s.type == RopeType::DynamicYarn) {
    const auto r = yarn_correction_range(s);
    j["yarn"] = {{"beta_fast", s.beta_fast}, {"beta_slow", s.beta_slow}, {"truncate", s.truncate},
                 {"correction_low", r.low}, {"correction_high", r.high}};
  }
  return j;
}

// ---------------------------------------------------------------- inspect
void run_inspect(const CommonOptions& o) {
  const ModelConfig c = load(o);
  json j = {{"file", c.path},
            {"format", to_string(c.format)},
            {"architecture", c.architecture},
            {"name", c.name},
            {"hidden_size", c.hidden_size},
            {"num_attention_heads", c.num_attention_heads},
            {"num_key_value_heads", c.num_key_value_heads},
            {"num_hidden_layers", c.num_hidden_layers},
            {"vocab_size", c.vocab_size},
            {"head_dim", c.head_dim},
            {"max_position_embeddings", c.max_position_embeddings},
            {"trained_context", c.trained_context()},
            {"layout", to_string(c.layout)},
            {"convention", to_string(c.convention)},
            {"alibi", c.alibi},
            {"rope_source", c.rope_source},
            {"rope_parameters", c.rope_parameters},
            {"notes", c.notes}};
  if (c.sliding_window) j["sliding_window"] = *c.sliding_window;
  if (!c.rope_parameters_by_layer_type.empty()) j["rope_parameters_by_layer_type"] = c.rope_parameters_by_layer_type;
  std::optional<RopeSpec> spec;
  std::optional<RopeFrequencies> freqs;
  std::string spec_error;
  if (c.alibi) {
    j["alibi_slopes"] = alibi_slopes(static_cast<int>(std::max<int64_t>(1, c.num_attention_heads)), c.alibi_max_bias);
  } else {
    try {
      spec = rope_spec_for(c);
      freqs = compute_frequencies(*spec);
      j["rotary_dim"] = spec->rotary_dim;
      j["attention_factor"] = freqs->attention_factor;
      j["reach"] = scaled_reach(c);
    } catch (const ConfigError& e) {
      spec_error = e.what();
      j["error"] = spec_error;
    }
  }
  // The tokenizer, when the file carries one or sits beside one, and how each engine will read it.
  std::optional<TokenizerReport> tokens;
  try {
    tokens = report_model_tokenizer(c, o.file);
    json engines = json::array();
    for (const auto& e : tokens->engines)
      engines.push_back({{"engine", e.engine}, {"how", e.how}, {"exact", e.exact}, {"caveats", e.caveats}});
    j["tokenizer"] = {{"kind", tokens->kind}, {"source", tokens->source}, {"vocab_size", tokens->vocab_size},
                      {"ropescale", tokens->ropescale}, {"engines", engines}};
  } catch (const ConfigError& e) {
    j["tokenizer"] = {{"error", e.what()}};
  }
  if (o.json) {
    print_json(j);
  } else {
    fmt::print("{}  ({}{})\n", c.path, to_string(c.format), c.architecture.empty() ? "" : ", " + c.architecture);
    if (!c.name.empty()) fmt::print("  name                 {}\n", c.name);
    fmt::print("  layers × heads        {} × {} query / {} kv, head_dim {}\n", c.num_hidden_layers, c.num_attention_heads,
               c.num_key_value_heads, c.head_dim);
    fmt::print("  hidden / vocab        {} / {}\n", c.hidden_size, c.vocab_size);
    fmt::print("  max_position          {}   (trained context {})\n", c.max_position_embeddings, c.trained_context());
    if (c.sliding_window) fmt::print("  sliding window        {}\n", *c.sliding_window);
    if (c.alibi) {
      const auto s = alibi_slopes(static_cast<int>(std::max<int64_t>(1, c.num_attention_heads)), c.alibi_max_bias);
      fmt::print("  positions             ALiBi (no RoPE), max bias {}; slopes {:.6g} … {:.6g}\n", c.alibi_max_bias, s.front(), s.back());
    } else {
      fmt::print("  positions             RoPE, {} pairs, {} convention\n", to_string(c.layout), to_string(c.convention));
      fmt::print("  rope ({})  {}\n", c.rope_source, safe_dump(c.rope_parameters).substr(0, 400));
      if (spec) {
        fmt::print("  rotary_dim            {} of {}{}\n", spec->rotary_dim, spec->head_dim,
                   spec->rotary_dim < spec->head_dim ? " (partial rotary)" : "");
        fmt::print("  attention factor      {:.9g}\n", freqs->attention_factor);
        fmt::print("  inv_freq              {:.6e} … {:.6e} (longest wavelength {:.0f} tokens)\n", freqs->inv_freq.front(),
                   freqs->inv_freq.back(), 2 * M_PI / freqs->inv_freq.back());
        fmt::print("  reach                 {} tokens\n", scaled_reach(c));
      } else {
        fmt::print("  error                 {}\n", spec_error);
      }
    }
    for (const auto& [k, v] : c.rope_parameters_by_layer_type) fmt::print("  layer type {:<12} {}\n", k, safe_dump(v).substr(0, 200));
    for (const auto& n : c.notes) fmt::print("  note: {}\n", n);
    if (tokens) {
      fmt::print("  tokenizer             {}, {} tokens, from {}\n", tokens->kind, tokens->vocab_size, tokens->source);
      fmt::print("    {:<18}  {}\n", "ropescale", tokens->ropescale);
      for (const auto& e : tokens->engines)
        fmt::print("    {:<18}  {} · {}\n", e.engine, e.exact ? "same ids" : "DIFFERENT ids", e.how);
      for (const auto& w : tokens->warnings()) fmt::print("  warning: {}\n", w);
    } else {
      fmt::print("  tokenizer             {}\n", j["tokenizer"]["error"].get<std::string>());
    }
  }
}

// ---------------------------------------------------------------- freqs
struct FreqsOptions {
  CommonOptions common;
  std::optional<int64_t> seq_len;
  std::string layout;
  std::string layer_type;
};

void run_freqs(const FreqsOptions& o) {
  const ModelConfig c = load(o.common);
  RopeSpec s = rope_spec_for(c, o.layer_type);
  if (!o.layout.empty()) {
    auto l = parse_pair_layout(o.layout);
    if (!l) throw_unreadable("--layout", "'" + o.layout + "' is not one of half-split, interleaved");
    s.layout = *l;
  }
  if (o.seq_len && *o.seq_len < 0) throw_unreadable("--seq-len", "must be >= 0");
  const RopeFrequencies f = compute_frequencies(s, o.seq_len);
  if (o.common.json) {
    print_json(spec_json(s, f, o.seq_len));
    return;
  }
  fmt::print("{} · rotary_dim {} · theta {} (effective {:.10g}) · factor {} (effective {:.6g}) · attention factor {:.9g}\n",
             to_string(s.type), s.rotary_dim, s.theta, f.effective_theta, s.factor, f.effective_factor, f.attention_factor);
  const auto div = divisors_against_default(s, f);
  fmt::print("{:>5}  {:>18}  {:>16}  {:>12}\n", "pair", "inv_freq", "wavelength", "divisor");
  for (size_t j = 0; j < f.inv_freq.size(); ++j)
    fmt::print("{:>5}  {:>18.10e}  {:>16.6g}  {:>12.6g}\n", j, f.inv_freq[j], 2 * M_PI / f.inv_freq[j], div[j]);
}

// ---------------------------------------------------------------- check
struct CheckCliOptions {
  CommonOptions common;
  std::optional<int64_t> target;
};

int run_check(const CheckCliOptions& o) {
  const ModelConfig c = load(o.common);
  CheckOptions co;
  co.target_context = o.target;
  const auto findings = check_config(c, co);
  const int code = has_errors(findings) ? 1 : 0;
  if (o.common.json) {
    print_json({{"file", c.path}, {"ok", code == 0}, {"findings", findings_json(findings)}});
  } else {
    int errors = 0;
    for (const auto& f : findings) errors += f.severity == Severity::Error;
    fmt::print("{}: {} error(s), {} warning(s)\n", c.path, errors, findings.size() - errors);
    print_findings(findings);
  }
  return code;
}

// ---------------------------------------------------------------- export
struct ExportCliOptions {
  CommonOptions common;
  std::string to;
  std::optional<int64_t> target;
};

void run_export(const ExportCliOptions& o) {
  const ModelConfig c = load(o.common);
  auto t = parse_export_target(o.to);
  if (!t) throw_unreadable("--to", "'" + o.to + "' is not one of hf, hf-v5, vllm, llama.cpp");
  const ExportResult r = export_setting(c, *t, o.target);
  if (o.common.json)
    print_json(export_json(r));
  else
    print_export(r);
}

// ---------------------------------------------------------------- plan
struct PlanCliOptions {
  CommonOptions common;
  int64_t target = 0;
  bool finetune = false;
  bool mixed = false;
};

void run_plan(const PlanCliOptions& o) {
  const ModelConfig c = load(o.common);
  PlanOptions po;
  po.target_context = o.target;
  po.will_finetune = o.finetune;
  po.mixed_traffic = o.mixed;
  const Plan p = make_plan(c, po);
  if (o.common.json) {
    json kv = json::array();
    for (const auto& k : p.kv_cache) kv.push_back({{"dtype", k.dtype}, {"bytes_per_element", k.bytes_per_element}, {"bytes", k.bytes}, {"ropescale_runtime", k.runtime}});
    json ex = json::array();
    for (const auto& e : p.exports) ex.push_back(export_json(e));
    print_json({{"file", c.path},
                {"trained_context", p.trained_context},
                {"native_context", p.native_context},
                {"target_context", p.target_context},
                {"ratio", p.ratio},
                {"method", p.method},
                {"needs_finetune", p.needs_finetune},
                {"reason", p.reason},
                {"rope_scaling", p.rope_scaling},
                {"exports", ex},
                {"kv_cache", kv},
                {"notes", p.notes},
                {"findings", findings_json(p.findings)}});
    return;
  }
  fmt::print("{}: trained at {} tokens, reaches {} as configured; target {} ({:.3g}× trained)\n", c.path,
             p.trained_context, p.native_context, p.target_context, p.ratio);
  fmt::print("\nrecommendation: {}{}\n  {}\n", p.method, p.needs_finetune ? " + fine-tuning at the target length" : "", p.reason);
  if (!p.rope_scaling.is_null()) fmt::print("  rope_scaling: {}\n", safe_dump(p.rope_scaling));
  for (const auto& n : p.notes) fmt::print("  note: {}\n", n);
  fmt::print("\nKV cache per sequence at {} tokens ({} layers × {} kv heads × {} dims × 2):\n", p.target_context,
             c.num_hidden_layers, c.num_key_value_heads, c.head_dim);
  for (const auto& k : p.kv_cache)
    fmt::print("  {:<9} {:>12}{}\n", k.dtype, human_bytes(k.bytes), k.runtime ? fmt::format("   --kv-cache {}", k.dtype == "f16/bf16" ? "f16" : k.dtype) : "");
  fmt::print("\nexports:\n");
  for (const auto& e : p.exports) print_export(e);
  fmt::print("\ncheck of the planned configuration:\n");
  print_findings(p.findings);
}

}  // namespace

void add_config_commands(CLI::App& app, int& exit_code) {
  {
    auto o = std::make_shared<CommonOptions>();
    auto* c = app.add_subcommand("inspect", "Summarize a config.json / GGUF / llama2.c file's position encoding");
    c->add_option("file", o->file, "config.json, a directory holding one, a .gguf or a llama2.c .bin")->required();
    add_rope_scaling_option(c, *o);
    c->add_option("--convention", o->convention, "hf | ggml (default: the file's own)");
    c->add_flag("--json", o->json, "Print one JSON object");
    c->callback([o, &exit_code] { run_inspect(*o), exit_code = 0; });
  }
  {
    auto o = std::make_shared<FreqsOptions>();
    auto* c = app.add_subcommand("freqs", "Print the per-pair inverse frequencies and attention factor");
    c->add_option("--config", o->common.file, "config.json / GGUF / llama2.c file")->required();
    add_rope_scaling_option(c, o->common);
    c->add_option("--seq-len", o->seq_len, "Current sequence length (dynamic, dynamic_yarn, longrope)");
    c->add_option("--convention", o->common.convention, "hf | ggml (default: the file's own)");
    c->add_option("--layout", o->layout, "half-split | interleaved (default: the model's own)");
    c->add_option("--layer-type", o->layer_type, "Layer type for per-layer rope_parameters (e.g. sliding_attention)");
    c->add_flag("--json", o->common.json, "Print one JSON object");
    c->callback([o, &exit_code] { run_freqs(*o), exit_code = 0; });
  }
  {
    auto o = std::make_shared<CheckCliOptions>();
    auto* c = app.add_subcommand("check", "Validate a model's rope setting: HF validator rules and known pitfalls.\n"
                                          "Exit 0: no errors (warnings allowed); 1: errors; 2: input unreadable");
    c->add_option("file", o->common.file, "config.json / GGUF / llama2.c file")->required();
    add_rope_scaling_option(c, o->common);
    c->add_option("--target-context", o->target, "The context you intend to serve (enables reach checks)")
        ->check(CLI::PositiveNumber);
    c->add_flag("--json", o->common.json, "Print one JSON object");
    c->callback([o, &exit_code] { exit_code = run_check(*o); });
  }
  {
    auto o = std::make_shared<ExportCliOptions>();
    auto* c = app.add_subcommand("export", "Write the setting for Hugging Face, vLLM or llama.cpp");
    c->add_option("file", o->common.file, "config.json / GGUF / llama2.c file")->required();
    c->add_option("--to", o->to, "hf | hf-v5 | vllm | llama.cpp")->required();
    add_rope_scaling_option(c, o->common);
    c->add_option("--target-context", o->target, "Context length to serve (default: the setting's reach)")
        ->check(CLI::PositiveNumber);
    c->add_flag("--json", o->common.json, "Print one JSON object");
    c->callback([o, &exit_code] { run_export(*o), exit_code = 0; });
  }
  {
    auto o = std::make_shared<PlanCliOptions>();
    auto* c = app.add_subcommand("plan", "Recommend a method and settings for a target context, with exports and KV-cache size");
    c->add_option("file", o->common.file, "config.json / GGUF / llama2.c file")->required();
    c->add_option("--target-context", o->target, "Target context length in tokens")->required()->check(CLI::PositiveNumber);
    c->add_flag("--finetune", o->finetune, "You can fine-tune at the target length");
    c->add_flag("--mixed", o->mixed, "Short and long prompts both matter (prefers dynamic methods)");
    add_rope_scaling_option(c, o->common);
    c->add_flag("--json", o->common.json, "Print one JSON object");
    c->callback([o, &exit_code] { run_plan(*o), exit_code = 0; });
  }
}

}  // namespace ropescale::cli
