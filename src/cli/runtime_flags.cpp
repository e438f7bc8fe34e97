#include "runtime_flags.h"

#include "ropescale/config/error.h"
#include "ropescale/config/model_config.h"
#include "ropescale/model/token_spans.h"

namespace ropescale::cli {

void add_runtime_flags(CLI::App* c, RuntimeFlags& f, RuntimeFlagSet which) {
  if (which.kv_cache)
    add_kv_cache_option(c, f.kv_cache);
  if (which.kv_window) {
    c->add_option("--kv-window", f.kv_window,
                  "Keep only the last W tokens in the KV cache (with --kv-sinks, StreamingLLM): kept keys take their cache "
                  "positions, re-rotated as the window slides; the stream has no length limit; 0 = keep every token")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    c->add_option("--kv-sinks", f.kv_sinks, "With --kv-window: also keep the first S tokens (attention sinks)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    c->add_option("--self-extend-window", f.self_extend_window,
                  "Self-Extend (llama.cpp's --grp-attn-w): neighbours within W tokens keep exact positions, farther keys "
                  "take grouped ones (training-free; combines with any --rope-scaling); 0 = off")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    c->add_option("--self-extend-group", f.self_extend_group,
                  "Self-Extend's group size G (llama.cpp's --grp-attn-n): far positions ⌊p/G⌋; reach ≈ (trained − W)·G + W")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    c->add_option("--kv-budget-tokens", f.kv_budget,
                  "Evict by accumulated attention (H2O heavy hitters): keep at most B tokens in the KV cache — the most "
                  "recent B/2 and the most attended of the rest; kept keys keep their text positions (pair with a "
                  "--rope-scaling that covers the stream); 0 = keep every token")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    c->add_option("--kv-protect", f.kv_protect,
                  "With --kv-budget-tokens: a regular expression (ECMAScript) on the prompt's text; the tokens it covers "
                  "are never evicted (headings, the question). Applies to prompts (generate, serve, passkey, tasks), not "
                  "to perplexity windows");
  }
  if (which.key_rotation) {
    if (which.rotation_auto) f.key_rotation = "auto";
    c->add_option("--key-rotation", f.key_rotation,
                  std::string(which.rotation_auto ? "auto | " : "") +
                      "write | read: write rotates each key once when cached (HF/vLLM behaviour); read caches keys "
                      "unrotated and rotates them with the current frequencies (exact for length-dependent methods)" +
                      (which.rotation_auto ? "; auto = read for length-dependent methods, else write" : ""))
        ->check(which.rotation_auto ? CLI::IsMember({"auto", "write", "read"}) : CLI::IsMember({"write", "read"}))
        ->capture_default_str();
  }
  if (which.chunk) {
    if (f.chunk == 0)  // a command whose default is one piece (logits, like HF)
      c->add_option("--chunk", f.chunk, "Prefill chunk size (tokens; 0 = all at once)")->capture_default_str()->check(CLI::NonNegativeNumber);
    else
      c->add_option("--chunk", f.chunk, "Prefill chunk size (tokens)")->capture_default_str()->check(CLI::PositiveNumber);
  }
  if (which.threads)
    c->add_option("--threads", f.threads, "Threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
}

CLI::Validator rope_scaling_argument() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const auto first = text.find_first_not_of(" \t\r\n");
        if (first == std::string::npos || text[first] == '{') return "";
        try {
          text = read_rope_dict_file(text).dump();
        } catch (const std::exception& e) {
          return e.what();
        }
        return "";
      },
      "JSON or FILE", "rope_scaling");
}

CLI::Option* add_kv_cache_option(CLI::App* c, std::string& kv_cache) {
  return c
      ->add_option("--kv-cache", kv_cache,
                   "KV-cache storage: f32; f16 (half the bytes, ~5e-4 relative rounding); q8_0 or q4_0 (ggml's blocks of 32 "
                   "values + an f16 scale: 34/128 and 18/128 of f32's bytes; head_dim a multiple of 32)")
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            return parse_kv_type(s) ? "" : "'" + s + "' is not one of " + std::string(kKvTypeNames);
          },
          "f32|f16|q8_0|q4_0"))
      ->capture_default_str();
}

KvType kv_cache_of(const RuntimeFlags& f) {
  if (const auto t = parse_kv_type(f.kv_cache)) return *t;
  throw_unreadable("--kv-cache", "'" + f.kv_cache + "' is not one of " + std::string(kKvTypeNames));
}

void apply_kv_flags(const RuntimeFlags& f, SessionOptions& so) {
  if (f.kv_sinks > 0 && f.kv_window == 0) throw_unreadable("--kv-sinks", std::to_string(f.kv_sinks) + " needs --kv-window");
  so.kv_cache = kv_cache_of(f);
  so.kv_window = f.kv_window;
  so.kv_sinks = f.kv_sinks;
  so.self_extend = {f.self_extend_group, f.self_extend_window};
  if (f.self_extend_group > 1 && f.self_extend_window == 0)
    throw_unreadable("--self-extend-group", std::to_string(f.self_extend_group) + " needs --self-extend-window");
  if (so.self_extend.enabled() && f.kv_window > 0) throw_unreadable("--self-extend-window", "does not combine with --kv-window");
  so.kv_budget = f.kv_budget;
  if (f.kv_budget == 1) throw_unreadable("--kv-budget-tokens", "1: a budget must hold at least 2 tokens");
  if (f.kv_budget > 0 && f.kv_window > 0) throw_unreadable("--kv-budget-tokens", "does not combine with --kv-window");
  if (f.kv_budget > 0 && so.self_extend.enabled()) throw_unreadable("--kv-budget-tokens", "does not combine with Self-Extend");
  if (!f.kv_protect.empty()) {
    if (f.kv_budget == 0) throw_unreadable("--kv-protect", "'" + f.kv_protect + "' needs --kv-budget-tokens");
    try {
      TokenPattern{f.kv_protect};  // compiles it as every user of the pattern will
    } catch (const std::invalid_argument& e) {
      throw_unreadable("--kv-protect", e.what());
    }
  }
}

RunOptions run_options_of(const RuntimeFlags& f) {
  SessionOptions so;
  apply_kv_flags(f, so);
  return {f.chunk, f.threads, so.kv_cache, so.kv_window, so.kv_sinks, so.self_extend, key_rotation_of(f), so.kv_budget, f.kv_protect};
}

std::optional<KeyRotation> key_rotation_of(const RuntimeFlags& f) {
  if (f.key_rotation == "read") return KeyRotation::AtRead;
  if (f.key_rotation == "write") return KeyRotation::AtWrite;
  if (f.key_rotation == "auto") return std::nullopt;
  throw_unreadable("--key-rotation", "'" + f.key_rotation + "' is not one of auto, write, read");
}

}  // namespace ropescale::cli
