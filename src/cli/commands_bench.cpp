// bench rope: the rotary kernel against memcpy and the straightforward baseline.
#include <unistd.h>

#include <memory>
#include <sstream>

#include <fmt/core.h>

#include "commands.h"
#include "output.h"
#include "ropescale/bench/attention_bench.h"
#include "ropescale/bench/rotary_bench.h"
#include "ropescale/config/error.h"
#include "ropescale/kernels/thread_pool.h"

namespace ropescale::cli {

namespace {

struct BenchOptions {
  std::string tokens = "1,16,512,8192";
  std::string dtypes = "f32,bf16";
  std::string threads = "1";
  double min_time = 0.2;
  bool json = false;
};

// --threads and --min-time, read the same way by every bench subcommand.
std::vector<int> parse_threads(const std::string& list) {
  return parse_list<int>(list, "--threads", [](const std::string& s) {
    const int v = std::stoi(s);
    if (v < 1 || v > 1024) throw std::out_of_range("threads");
    return v;
  });
}
void check_min_time(double seconds) {
  if (!(seconds > 0 && seconds < 100)) throw_unreadable("--min-time", "must be in (0, 100) seconds");
}

void print_row(const RotaryBenchResult& r) {
  fmt::print("{:<18} {:<5} {:>6} {:>3}  {:>10}  {:>8.2f} {:>8.2f} {:>8.2f}  {:>6.0f}%  {:>6.2f}x  {:>10.3f}\n", r.shape,
             to_string(r.dtype), r.tokens, r.threads, human_bytes(r.bytes), r.bytes / r.memcpy_s / 1e9,
             r.bytes / r.naive_s / 1e9, r.bytes / r.optimized_s / 1e9, 100 * r.fraction_of_memcpy(), r.speedup_vs_naive(),
             r.optimized_s * 1e6);
  std::fflush(stdout);
}

void run_bench_rope(const BenchOptions& o) {
  RotaryBenchOptions bo;
  bo.tokens = parse_list<int64_t>(o.tokens, "--tokens", [](const std::string& s) {
    const long long v = std::stoll(s);
    if (v < 1 || v > (1 << 20)) throw std::out_of_range("tokens");
    return static_cast<int64_t>(v);
  });
  bo.dtypes = parse_list<DType>(o.dtypes, "--dtype", [](const std::string& s) {
    if (s == "f32") return DType::F32;
    if (s == "bf16") return DType::BF16;
    if (s == "f16") return DType::F16;
    throw std::invalid_argument(s);
  });
  bo.threads = parse_threads(o.threads);
  check_min_time(o.min_time);
  bo.min_seconds = o.min_time;
  const bool tty = isatty(STDERR_FILENO);
  const bool human = !o.json;
  const size_t total = rotary_bench_shapes().size() * bo.dtypes.size() * bo.tokens.size() * bo.threads.size();
  size_t done = 0;
  if (human) {
    fmt::print("rotary kernel ({} SIMD, pool of {} threads): GB/s = bytes read + written per second\n",
               rotary_simd_target(), ThreadPool::global().size());
    fmt::print("{:<18} {:<5} {:>6} {:>3}  {:>10}  {:>8} {:>8} {:>8}  {:>7}  {:>7}  {:>10}\n", "shape", "dtype", "tokens",
               "thr", "bytes", "memcpy", "naive", "ropescale", "of cpy", "vs naive", "us/call");
  }
  const auto results = run_rotary_bench(bo, [&](const RotaryBenchResult& r) {
    ++done;
    if (human) print_row(r);
    if (tty && !human) fmt::print(stderr, "\r[{}/{}] {} {} {} tokens", done, total, r.shape, to_string(r.dtype), r.tokens);
  });
  if (tty && !human) fmt::print(stderr, "\n");
  if (o.json) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : results)
      a.push_back({{"shape", r.shape}, {"dtype", to_string(r.dtype)}, {"tokens", r.tokens}, {"threads", r.threads},
                   {"bytes", r.bytes}, {"memcpy_s", r.memcpy_s}, {"naive_s", r.naive_s}, {"ropescale_s", r.optimized_s},
                   {"fraction_of_memcpy", r.fraction_of_memcpy()}, {"speedup_vs_naive", r.speedup_vs_naive()}});
    print_json({{"benchmark", "rope"}, {"simd_target", rotary_simd_target()}, {"results", a}});
  }
}

struct AttentionBenchOptions {
  std::string tokens = "2048,8192";
  std::string head_dims = "8,32,128";
  std::string heads = "4/2";
  std::string threads = "1,2";
  std::string kv = "f32,f16";
  double min_time = 0.3;
  bool json = false;
};

void run_bench_attention(const AttentionBenchOptions& o) {
  const auto tokens = parse_list<int64_t>(o.tokens, "--tokens", [](const std::string& s) {
    const long long v = std::stoll(s);
    if (v < 1 || v > (1 << 17)) throw std::out_of_range("tokens");
    return static_cast<int64_t>(v);
  });
  const auto dims = parse_list<int>(o.head_dims, "--head-dim", [](const std::string& s) {
    const int v = std::stoi(s);
    if (v < 1 || v > 1024) throw std::out_of_range("head_dim");
    return v;
  });
  const auto heads = parse_list<std::pair<int, int>>(o.heads, "--heads", [](const std::string& s) {
    const auto slash = s.find('/');
    if (slash == std::string::npos) throw std::invalid_argument(s);
    const int h = std::stoi(s.substr(0, slash)), kv = std::stoi(s.substr(slash + 1));
    if (h < 1 || kv < 1 || h > 256 || h % kv != 0) throw std::out_of_range(s);
    return std::make_pair(h, kv);
  });
  const auto threads = parse_threads(o.threads);
  const auto kvs = parse_list<KvType>(o.kv, "--kv-cache", [](const std::string& s) {
    if (const auto t = parse_kv_type(s)) return *t;
    throw std::invalid_argument(s);
  });
  check_min_time(o.min_time);
  std::vector<AttentionBenchCase> cases;
  for (int t : threads)
    for (auto [h, kv] : heads)
      for (int hd : dims)
        for (KvType k : kvs)
          if (kv_type_fits(k, hd))  // q8_0 / q4_0 need whole blocks of 32 channels
            for (int64_t n : tokens) cases.push_back({n, h, kv, hd, k, t});
  if (!o.json) {
    fmt::print("attention kernel ({} SIMD): causal prefill of N tokens and one decoded token after N;\n"
               "GFLOP/s count 4·head_dim per (query, key) pair and head; peak = OpenBLAS sgemm on the same threads\n",
               attention_simd_target());
    fmt::print("{:>6} {:>5} {:>4} {:>3} {:>3}  {:>11} {:>9} {:>8} {:>7}  {:>10} {:>9}  {:>8}\n", "tokens", "heads", "hd", "kv",
               "thr", "prefill ms", "GFLOP/s", "of peak", "exp ≈", "decode µs", "GFLOP/s", "peak");
  }
  const auto results = run_attention_bench(cases, o.min_time, [&](const AttentionBenchResult& r) {
    if (o.json) return;
    fmt::print("{:>6} {:>5} {:>4} {:>3} {:>3}  {:>11.2f} {:>9.1f} {:>7.0f}% {:>6.0f}%  {:>10.1f} {:>9.1f}  {:>8.1f}\n", r.c.tokens,
               fmt::format("{}/{}", r.c.n_heads, r.c.n_kv_heads), r.c.head_dim, to_string(r.c.kv), r.c.threads, r.prefill_s * 1e3,
               r.prefill_gflops(), 100 * r.fraction_of_peak(), 100 * r.exp_share(), r.decode_s * 1e6, r.decode_gflops(),
               r.peak_gflops);
    std::fflush(stdout);
  });
  if (o.json) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : results)
      a.push_back({{"tokens", r.c.tokens}, {"n_heads", r.c.n_heads}, {"n_kv_heads", r.c.n_kv_heads}, {"head_dim", r.c.head_dim},
                   {"kv_cache", to_string(r.c.kv)}, {"threads", r.c.threads}, {"prefill_s", r.prefill_s},
                   {"prefill_gflops", r.prefill_gflops()}, {"fraction_of_peak", r.fraction_of_peak()},
                   {"exp_share", r.exp_share()}, {"decode_s", r.decode_s}, {"decode_gflops", r.decode_gflops()},
                   {"sgemm_peak_gflops", r.peak_gflops}});
    print_json({{"benchmark", "attention"}, {"simd_target", attention_simd_target()}, {"results", a}});
  }
}

}  // namespace

void add_bench_commands(CLI::App& app, int& exit_code) {
  auto* bench = app.add_subcommand("bench", "Benchmarks (speed is measured here, never in tests)");
  bench->require_subcommand(1);
  auto o = std::make_shared<BenchOptions>();
  auto* rope = bench->add_subcommand("rope", "Rotary kernel vs memcpy of the same bytes and the straightforward baseline, same run");
  rope->add_option("--tokens", o->tokens, "Comma-separated token counts")->capture_default_str();
  rope->add_option("--dtype", o->dtypes, "Comma-separated storage types: f32, bf16, f16")->capture_default_str();
  rope->add_option("--threads", o->threads, "Comma-separated thread counts")->capture_default_str();
  rope->add_option("--min-time", o->min_time, "Seconds per measurement")->capture_default_str();
  rope->add_flag("--json", o->json, "Print one JSON object");
  rope->callback([o, &exit_code] { run_bench_rope(*o), exit_code = 0; });

  auto a = std::make_shared<AttentionBenchOptions>();
  auto* att = bench->add_subcommand("attention", "Attention kernel GFLOP/s (prefill and decode) against the sgemm peak measured in the same run");
  att->add_option("--tokens", a->tokens, "Comma-separated context lengths")->capture_default_str();
  att->add_option("--head-dim", a->head_dims, "Comma-separated head dimensions")->capture_default_str();
  att->add_option("--heads", a->heads, "Comma-separated query/KV head counts (H/KV)")->capture_default_str();
  att->add_option("--threads", a->threads, "Comma-separated thread counts")->capture_default_str();
  att->add_option("--kv-cache", a->kv, "Comma-separated K/V storage types: f32, f16, q8_0, q4_0 (quantized: head dims that are multiples of 32)")->capture_default_str();
  att->add_option("--min-time", a->min_time, "Seconds per measurement")->capture_default_str();
  att->add_flag("--json", a->json, "Print one JSON object");
  att->callback([a, &exit_code] { run_bench_attention(*a), exit_code = 0; });
}

}  // namespace ropescale::cli
