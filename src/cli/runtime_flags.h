// The runtime flags every command that runs a model shares — --kv-cache,
// --key-rotation, --chunk, --threads — registered with one text and one check,
// and turned into session options one way.
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "ropescale/eval/perplexity.h"
#include "ropescale/model/session.h"

namespace ropescale::cli {

struct RuntimeFlags {
  std::string kv_cache = "f32";
  int64_t kv_window = 0, kv_sinks = 0;  // StreamingLLM sinks + sliding window; 0 = keep every token
  int64_t self_extend_group = 1, self_extend_window = 0;  // Self-Extend; window 0 = off
  int64_t kv_budget = 0;   // H2O eviction by accumulated attention; 0 = keep every token
  std::string kv_protect = {};  // a regex: the tokens it covers are never evicted
  std::string key_rotation = "write";  // "auto" where the command offers it
  int chunk = 256;
  int threads = 0;
};

// Which flags a command has. `rotation_auto`: --key-rotation also takes `auto`
// (read for length-dependent methods, else write) and defaults to it.
struct RuntimeFlagSet {
  bool kv_cache = true, key_rotation = true, chunk = true, threads = true;
  bool kv_window = true;  // --kv-window, --kv-sinks, --self-extend-group, --self-extend-window, --kv-budget-tokens, --kv-protect
  bool rotation_auto = false;
};

void add_runtime_flags(CLI::App* c, RuntimeFlags& flags, RuntimeFlagSet which = {});

// --rope-scaling's argument: JSON text as given, or a file holding the setting (a
// dict, or a document with rope_scaling such as calibrate --out writes) turned into
// that JSON text. Attach with ->transform(rope_scaling_argument()).
CLI::Validator rope_scaling_argument();

KvType kv_cache_of(const RuntimeFlags& flags);
// The cache policy of the flags into session options: --kv-cache, --kv-window, --kv-sinks, Self-Extend's
// positions (--self-extend-group, --self-extend-window) and --kv-budget-tokens (--kv-protect, a pattern,
// is the caller's to turn into spans of its prompt: token_spans_matching; checked here).
void apply_kv_flags(const RuntimeFlags& flags, SessionOptions& so);
// The run options an evaluation uses: the flags above, --key-rotation, --chunk, --threads.
RunOptions run_options_of(const RuntimeFlags& flags);
// --kv-cache alone (serve registers it without the other runtime flags).
CLI::Option* add_kv_cache_option(CLI::App* c, std::string& kv_cache);
// nullopt for `auto`.
std::optional<KeyRotation> key_rotation_of(const RuntimeFlags& flags);

}  // namespace ropescale::cli
