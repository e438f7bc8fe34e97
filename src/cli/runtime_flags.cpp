#include "runtime_flags.h"

#include "ropescale/config/error.h"
#include "ropescale/config/model_config.h"

namespace ropescale::cli {

void add_runtime_flags(CLI::App* c, RuntimeFlags& f, RuntimeFlagSet which) {
  if (which.kv_cache)
    c->add_option("--kv-cache", f.kv_cache, "KV-cache storage: f32, or f16 (half the bytes, ~5e-4 relative rounding)")
        ->check(CLI::IsMember({"f32", "f16"}))
        ->capture_default_str();
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

KvType kv_cache_of(const RuntimeFlags& f) {
  if (f.kv_cache == "f16") return KvType::F16;
  if (f.kv_cache == "f32") return KvType::F32;
  throw_unreadable("--kv-cache", "'" + f.kv_cache + "' is not one of f32, f16");
}

std::optional<KeyRotation> key_rotation_of(const RuntimeFlags& f) {
  if (f.key_rotation == "read") return KeyRotation::AtRead;
  if (f.key_rotation == "write") return KeyRotation::AtWrite;
  if (f.key_rotation == "auto") return std::nullopt;
  throw_unreadable("--key-rotation", "'" + f.key_rotation + "' is not one of auto, write, read");
}

}  // namespace ropescale::cli
