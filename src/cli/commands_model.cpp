// generate: run a model with any RoPE scaling, chosen per request.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <random>

#include <fmt/core.h>

#include "commands.h"
#include "output.h"
#include "runtime_flags.h"
#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/kernels/attention.h"
#include "ropescale/model/gguf_model.h"
#include "ropescale/model/hf_model.h"
#include "ropescale/model/session.h"
#include "ropescale/model/token_spans.h"
#include "ropescale/model/tokenizer.h"
#include "ropescale/model/tokenizer_report.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/rope/rope_types.h"

namespace ropescale::cli {

namespace {

struct GenerateOptions {
  std::string model, tokenizer, prompt, rope_scaling, rope_policy;
  RuntimeFlags runtime;
  double policy_granularity = 1.0;
  int64_t ctx = 0;
  int max_tokens = 256;
  double temperature = 0.0;
  uint64_t seed = 42;
  bool timings = false;
};

int sample(const std::vector<float>& logits, double temperature, std::mt19937_64& rng) {
  if (temperature <= 0) return static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const float mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  for (size_t i = 0; i < p.size(); ++i) p[i] = std::exp((logits[i] - mx) / temperature);
  return std::discrete_distribution<int>(p.begin(), p.end())(rng);
}

void run_generate(const GenerateOptions& o) {
  const LlamaModel model = load_model(o.model);
  const auto tok = tokenizer_for_model(model, o.model, o.tokenizer);
  SessionOptions so;
  const auto prompt = tok->encode(o.prompt, true, false);
  std::string rope_scaling = o.rope_scaling;
  if (!o.rope_policy.empty()) {
    if (!rope_scaling.empty()) throw_unreadable("--rope-policy", "give --rope-policy or --rope-scaling, not both");
    RopePolicy policy{o.rope_policy, o.policy_granularity, 64.0};
    try {
      rope_scaling = rope_scaling_for_request(model, int64_t(prompt.size()) + o.max_tokens, policy);
    } catch (const std::invalid_argument& e) {
      throw_unreadable("--rope-policy", e.what());
    }
    std::fprintf(stderr, "ropescale: %zu prompt + %d new tokens → %s\n", prompt.size(), o.max_tokens,
                 rope_scaling.empty() ? "plain RoPE (within the trained context)" : rope_scaling.c_str());
  }
  so.rope = rope_spec_for_model(model, rope_scaling);
  so.key_rotation = *key_rotation_of(o.runtime);
  apply_kv_flags(o.runtime, so);
  if (!o.runtime.kv_protect.empty()) so.kv_protect = token_spans_matching(*tok, prompt, o.runtime.kv_protect);
  so.max_context = o.ctx > 0 ? o.ctx : std::max<int64_t>(model.hp.trained_context, int64_t(prompt.size()) + o.max_tokens);
  if (int64_t(prompt.size()) >= so.max_context)
    throw_unreadable("--ctx", "the prompt has " + std::to_string(prompt.size()) + " tokens; --ctx " +
                                  std::to_string(so.max_context) + " leaves no room to generate");
  so.threads = o.runtime.threads;
  so.chunk = o.runtime.chunk;
  InferenceSession session(model, so);
  std::mt19937_64 rng(o.seed);
  std::fputs(o.prompt.c_str(), stdout);
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  auto logits = session.forward(prompt);
  const auto t_prompt = clock::now();
  int prev = prompt.back(), decoded = 0;  // decoded: forward passes of one new token
  for (int i = 0; i < o.max_tokens && session.position() < so.max_context; ++i) {
    const int next = sample(logits, o.temperature, rng);
    if (next == tok->eos() || next == tok->bos()) break;
    const std::string piece = tok->decode(prev, next);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    prev = next;
    // The last token's forward pass feeds nothing: skip it, as a server ending the request does.
    if (i + 1 == o.max_tokens) break;
    logits = session.forward(std::span<const int>(&next, 1));
    ++decoded;
  }
  const auto t_end = clock::now();
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (o.timings) {
    // llama.cpp's split: the prompt's prefill (which also yields the first token), then one
    // forward pass per further token (the decode rate a server's streams are compared with).
    const double prompt_s = std::chrono::duration<double>(t_prompt - t_start).count();
    const double decode_s = std::chrono::duration<double>(t_end - t_prompt).count();
    std::fprintf(stderr, "ropescale: prompt %zu tokens in %.1f ms (%.1f tokens/s); decode %d tokens in %.1f ms (%.1f tokens/s)\n",
                 prompt.size(), prompt_s * 1e3, double(prompt.size()) / prompt_s, decoded, decode_s * 1e3,
                 decode_s > 0 ? decoded / decode_s : 0.0);
  }
}

struct BenchModelOptions {
  std::string model, ctx = "512,2048,8192", threads = "1,2", rope_scaling, kv = "f32";
  RuntimeFlags runtime;
  int decode_tokens = 64;
  bool json = false;
};

double peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss * 1024.0;  // Linux reports KiB
}

// Resident bytes now (/proc/self/statm): a row's own footprint while its session is alive, where the
// peak is the whole run's high-water mark.
double rss_bytes() {
  long pages_total = 0, pages_resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
    std::fclose(f);
  }
  return double(pages_resident) * double(sysconf(_SC_PAGESIZE));
}

void run_bench_model(const BenchModelOptions& o) {
  const LlamaModel model = load_model(o.model);
  const auto ctxs = parse_positive_ints(o.ctx, "--ctx");
  const auto threads = parse_positive_ints(o.threads, "--threads");
  const auto kvs = parse_list<KvType>(o.kv, "--kv-cache", [&](const std::string& s) {
    const auto t = parse_kv_type(s);
    if (!t) throw std::invalid_argument(s);
    if (!kv_type_fits(*t, model.hp.head_dim)) throw std::out_of_range(s);
    return *t;
  }, "one of " + std::string(kKvTypeNames) + " (q8_0 and q4_0 need head_dim a multiple of 32; this model's is " +
         std::to_string(model.hp.head_dim) + ")");
  if (!o.runtime.kv_protect.empty()) throw_unreadable("--kv-protect", "bench model runs random tokens: nothing to match");
  using clock = std::chrono::steady_clock;
  // Buffers of 1 MiB and more straight from mmap and back to the system when freed (glibc would otherwise raise
  // its threshold after the first free and keep later caches on the heap): each row's RSS is its own session's.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  nlohmann::json rows = nlohmann::json::array();
  if (!o.json)
    fmt::print("{}: {} layers, dim {}, {} heads / {} kv, trained at {}; prefill in chunks of {}; {} attention\n"
               "{:>7} {:>5} {:>3} {:>14} {:>14} {:>12} {:>12} {:>12} {:>12}\n",
               o.model, model.hp.n_layers, model.hp.dim, model.hp.n_heads, model.hp.n_kv_heads, model.hp.trained_context,
               o.runtime.chunk, attention_simd_target(), "ctx", "kv", "thr", "prefill tok/s", "decode tok/s", "KV cache", "session RSS", "RSS", "peak RSS");
  for (int64_t ctx : ctxs)
    for (KvType kv : kvs)
    for (int64_t thr : threads) {
      SessionOptions so;
      // Past the trained length, run as a user would: YaRN at the needed factor.
      const double factor = std::max(1.0, double(ctx + o.decode_tokens) / model.hp.trained_context);
      so.rope = rope_spec_for_model(model, !o.rope_scaling.empty() ? o.rope_scaling
                                           : factor > 1 ? rope_dict_for(rope_type_info(RopeType::Yarn), factor, model.hp.trained_context).dump()
                                                        : "");
      so.max_context = ctx + o.decode_tokens;
      apply_kv_flags(o.runtime, so);  // --kv-window, --kv-sinks, Self-Extend, checked as every command checks them
      so.kv_cache = kv;               // this row's type from the --kv-cache list
      so.chunk = o.runtime.chunk;
      so.threads = static_cast<int>(thr);
      const double rss_before = rss_bytes();
      InferenceSession s(model, so);
      std::mt19937 rng(1);
      std::vector<int> prompt(ctx);
      for (auto& t : prompt) t = 3 + static_cast<int>(rng() % (model.hp.vocab_size - 3));
      const auto t0 = clock::now();
      auto logits = s.forward(prompt);
      const double prefill = std::chrono::duration<double>(clock::now() - t0).count();
      const auto t1 = clock::now();
      for (int i = 0; i < o.decode_tokens; ++i) {
        const int next = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        logits = s.forward(std::span<const int>(&next, 1));
      }
      const double decode = std::chrono::duration<double>(clock::now() - t1).count();
      const double rss = rss_bytes(), peak = peak_rss_bytes();
      const size_t kv_bytes = s.kv_cache_bytes_allocated();
      rows.push_back({{"ctx", ctx}, {"kv_cache", to_string(kv)}, {"threads", thr}, {"prefill_tokens_per_s", ctx / prefill},
                      {"decode_tokens_per_s", o.decode_tokens / decode}, {"kv_cache_bytes", kv_bytes}, {"rss_bytes", rss},
                      {"session_rss_bytes", rss - rss_before}, {"peak_rss_bytes", peak}});
      if (!o.json)
        fmt::print("{:>7} {:>5} {:>3} {:>14.0f} {:>14.1f} {:>8.1f} MiB {:>8.1f} MiB {:>8.1f} MiB {:>8.1f} MiB\n", ctx, to_string(kv), thr,
                   ctx / prefill, o.decode_tokens / decode, kv_bytes / 1048576.0, (rss - rss_before) / 1048576.0,
                   rss / 1048576.0, peak / 1048576.0);
    }
  if (o.json) {
    const std::string s = nlohmann::json({{"benchmark", "model"}, {"model", o.model}, {"simd_target", attention_simd_target()}, {"results", rows}}).dump(2);
    std::puts(s.c_str());
  }
}

struct TokenizeOptions {
  std::string model, tokenizer, text;
  bool no_bos = false;
};

// The ids `eval ppl --text` would score, for `eval ppl --ids` and other tools.
void run_tokenize(const TokenizeOptions& o) {
  const LlamaModel model = load_model(o.model);
  const auto tok = tokenizer_for_model(model, o.model, o.tokenizer);
  const auto ids = tok->encode(read_file_text(o.text), !o.no_bos, false);
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += std::to_string(ids[i]) + (i + 1 == ids.size() || i % 32 == 31 ? "\n" : " ");
  std::fputs(out.c_str(), stdout);
}

struct LogitsOptions {
  std::string model, ids, rope_scaling;
  RuntimeFlags runtime{.chunk = 0};  // 0: all ids at once, as HF does
  int last = 1;
};

// Logits of the last N positions for given token ids: the hook oracles use to
// compare ropescale's forward pass with transformers and llama.cpp.
void run_logits(const LogitsOptions& o) {
  const LlamaModel model = load_model(o.model);
  std::vector<int> ids;
  std::stringstream ss(o.ids);
  std::string item;
  while (ss >> item) {
    try {
      ids.push_back(std::stoi(item));
    } catch (const std::exception&) {
      throw_unreadable("--ids", "'" + item + "' is not a token id");
    }
  }
  if (ids.empty()) throw_unreadable("--ids", "no token ids");
  if (!o.runtime.kv_protect.empty()) throw_unreadable("--kv-protect", "logits reads token ids, not text: nothing to match");
  SessionOptions so;
  so.rope = rope_spec_for_model(model, o.rope_scaling);
  so.key_rotation = *key_rotation_of(o.runtime);
  apply_kv_flags(o.runtime, so);
  so.max_context = std::max<int64_t>(model.hp.trained_context, ids.size());
  // One chunk by default: HF computes length-dependent frequencies once per forward.
  so.chunk = o.runtime.chunk > 0 ? o.runtime.chunk : static_cast<int>(ids.size());
  InferenceSession s(model, so);
  const auto logits = s.forward(ids, true);
  const int V = model.hp.vocab_size, n = static_cast<int>(ids.size()), last = std::min(o.last, n);
  nlohmann::json rows = nlohmann::json::array();
  for (int t = n - last; t < n; ++t) rows.push_back(std::vector<float>(logits.begin() + size_t(t) * V, logits.begin() + size_t(t + 1) * V));
  std::puts(nlohmann::json({{"positions", last}, {"vocab_size", V}, {"logits", rows}}).dump().c_str());
}

struct ConvertOptions {
  std::string model, tokenizer, out, to = "gguf", dtype = "f32", rope_scaling;
};

void run_convert(const ConvertOptions& o) {
  const LlamaModel model = load_model(o.model);
  const auto tok = vocabulary_for_model(model, o.model, o.tokenizer);
  if (o.to != "gguf" && o.to != "safetensors" && o.to != "llama2c")
    throw_unreadable("--to", "'" + o.to + "' is not one of gguf, safetensors, llama2c");
  const auto wt = parse_weight_type(o.dtype);
  if (!wt) throw_unreadable("--dtype", "'" + o.dtype + "' is not one of f32, f16, bf16, q8_0");
  const nlohmann::json rope = o.rope_scaling.empty() ? nlohmann::json() : parse_rope_override(o.rope_scaling);
  const RopeSpec spec = rope_setting_for_model(model, rope, "").spec;  // validates the setting
  const RopeTypeInfo& info = rope_type_info(spec.type);
  const std::string t(info.name);
  // Vocabularies llama.cpp or transformers would tokenize differently from ropescale: said, not silent.
  if (o.to != "llama2c")
    for (const auto& w : report_written_vocabulary(tok).warnings(o.to == "gguf" ? "llama.cpp" : "transformers"))
      fmt::print(stderr, "warning: {}\n", w);
  if (o.to == "safetensors") {
    write_hf_model(model, tok, *wt, o.out, rope);
    fmt::print("{} → {}/{{config.json, model.safetensors, tokenizer.bin, tokenizer.json}} ({}, rope {})\n", o.model, o.out, o.dtype, t);
    if (!info.hf_has_type)
      fmt::print("note: transformers has no '{}' rope_type; only ropescale reads this config.json as written\n", t);
    return;
  }
  if (o.to == "llama2c") {
    if (*wt != WeightType::F32) throw_unreadable("--dtype", "llama2.c files are f32 (version 1)");
    if (spec.type != RopeType::Default || spec.theta != 10000.0)
      throw_unreadable("--to", "llama2.c files cannot carry rope setting '" + t + "' (θ " + fmt::format("{}", spec.theta) +
                                   "); convert to gguf or safetensors, which can");
    const auto bytes = serialize_llama2c_model(model);
    write_file(o.out, bytes);
    const auto tok_path = (std::filesystem::path(o.out).parent_path() / ("tok" + std::to_string(tok.vocab_size()) + ".bin")).string();
    tok.save(tok_path);
    fmt::print("{} → {} (llama2.c v1 f32, {:.1f} KiB, trained context {}) and {}\n", o.model, o.out, bytes.size() / 1024.0,
               model.hp.trained_context, tok_path);
    return;
  }
  // A ropescale GGUF keeps its training record (how the weights were made) through a conversion.
  const nlohmann::json training = std::filesystem::is_directory(o.model) ? nlohmann::json() : load_gguf_training_record(o.model);
  const auto bytes = serialize_gguf_model(model, tok, *wt, rope, training);
  write_file(o.out, bytes);
  fmt::print("{} → {} ({}, {:.1f} KiB, rope {})\n", o.model, o.out, o.dtype, bytes.size() / 1024.0, t);
  if (info.gguf == GgufEncoding::NotExpressible)
    fmt::print("note: llama.cpp cannot express {}; the file runs there as plain RoPE. ropescale reads the exact "
               "setting from ropescale.rope_parameters\n", t);
}

}  // namespace

static void add_model_bench_command(CLI::App& app, int& exit_code) {
  auto* bench = app.get_subcommand("bench");
  auto o = std::make_shared<BenchModelOptions>();
  auto* c = bench->add_subcommand("model", "Prefill and decode tokens/s and peak memory at several context lengths");
  c->add_option("--model", o->model, "Model file (llama2.c or GGUF)")->required();
  c->add_option("--ctx", o->ctx, "Comma-separated prompt lengths")->capture_default_str();
  c->add_option("--threads", o->threads, "Comma-separated thread counts")->capture_default_str();
  c->add_option("--decode-tokens", o->decode_tokens, "Tokens decoded after the prompt")->capture_default_str()->check(CLI::PositiveNumber);
  add_runtime_flags(c, o->runtime, {.kv_cache = false, .key_rotation = false, .threads = false});  // lists here
  c->add_option("--kv-cache", o->kv, "Comma-separated KV-cache storage types, measured in one run: f32, f16, q8_0, q4_0")->capture_default_str();
  c->add_option("--rope-scaling", o->rope_scaling, "Scaling as vLLM JSON (default: YaRN at the needed factor past the trained length)")->transform(rope_scaling_argument());
  c->add_flag("--json", o->json, "Print one JSON object");
  c->callback([o, &exit_code] { run_bench_model(*o), exit_code = 0; });
}

void add_model_commands(CLI::App& app, int& exit_code) {
  add_model_bench_command(app, exit_code);
  {
    auto o = std::make_shared<TokenizeOptions>();
    auto* c = app.add_subcommand("tokenize", "Print a text file's token ids (BOS first), as `eval ppl --ids` reads them");
    c->add_option("--model", o->model, "Model file or HF directory")->required();
    c->add_option("--tokenizer", o->tokenizer, "Tokenizer (default: the model's own or beside it)");
    c->add_option("--text", o->text, "Text file")->required();
    c->add_flag("--no-bos", o->no_bos, "Do not start with BOS");
    c->callback([o, &exit_code] { run_tokenize(*o), exit_code = 0; });
  }
  {
    auto o = std::make_shared<LogitsOptions>();
    auto* c = app.add_subcommand("logits", "Print the logits of the last N positions for given token ids (JSON), for comparisons");
    c->add_option("--model", o->model, "Model file or HF directory")->required();
    c->add_option("--ids", o->ids, "Whitespace-separated token ids")->required();
    c->add_option("--rope-scaling", o->rope_scaling, "Scaling as vLLM JSON")->transform(rope_scaling_argument());
    c->add_option("--last", o->last, "Positions to print")->capture_default_str()->check(CLI::PositiveNumber);
    add_runtime_flags(c, o->runtime, {.threads = false});  // --chunk 0 (the default): all ids at once, as HF does
    c->callback([o, &exit_code] { run_logits(*o), exit_code = 0; });
  }
  {
    auto o = std::make_shared<ConvertOptions>();
    auto* c = app.add_subcommand("convert", "Convert a model to GGUF (llama.cpp keys and tensor names), carrying its rope setting");
    c->add_option("--model", o->model, "llama2.c checkpoint, GGUF, or HF directory")->required();
    c->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer (default: beside the model, or the GGUF's own)");
    c->add_option("--out", o->out, "Output file")->required();
    c->add_option("--to", o->to, "gguf (a file), safetensors (a directory: config.json, model.safetensors, tokenizer.bin) "
                                 "or llama2c (a v1 .bin and tok<vocab>.bin beside it; plain RoPE only)")
        ->capture_default_str();
    c->add_option("--dtype", o->dtype, "Weight type: f32, f16, bf16, q8_0 (norms stay f32)")->capture_default_str();
    c->add_option("--rope-scaling", o->rope_scaling, "Scaling to store with the model, as vLLM JSON")->transform(rope_scaling_argument());
    c->callback([o, &exit_code] { run_convert(*o), exit_code = 0; });
  }
  auto o = std::make_shared<GenerateOptions>();
  auto* g = app.add_subcommand("generate", "Generate text with any RoPE scaling, chosen per request (streams to stdout)");
  g->add_option("--model", o->model, "llama2.c checkpoint (.bin)")->required();
  g->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer (default: tokenizer.bin or tok<vocab>.bin beside the model)");
  g->add_option("--prompt", o->prompt, "Prompt text")->required();
  g->add_option("--rope-scaling", o->rope_scaling, "This request's scaling as vLLM JSON, e.g. '{\"rope_type\":\"yarn\",\"factor\":8}'")->transform(rope_scaling_argument());
  g->add_option("--rope-policy", o->rope_policy,
                "Per-request policy: factor 1.0 within the trained context, else this method (yarn, linear, ntk, llama3) "
                "at the factor the request's length needs");
  g->add_option("--policy-granularity", o->policy_granularity, "Round the policy's factor up to a multiple of this")
      ->capture_default_str();
  g->add_option("--ctx", o->ctx, "KV-cache capacity in tokens (default: trained context, or prompt + max tokens)")
      ->check(CLI::PositiveNumber);
  g->add_option("--max-tokens", o->max_tokens, "Tokens to generate")->capture_default_str()->check(CLI::NonNegativeNumber);
  g->add_option("--temp", o->temperature, "Sampling temperature (0 = greedy)")->capture_default_str()->check(CLI::NonNegativeNumber);
  g->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  g->add_flag("--timings", o->timings,
              "Print to stderr the prompt's prefill time and the decode rate (tokens after the first ÷ their time)");
  add_runtime_flags(g, o->runtime);
  g->callback([o, &exit_code] { run_generate(*o), exit_code = 0; });
}

}  // namespace ropescale::cli
