// Google Benchmark suite for the rotary kernel. Each shape × dtype × token
// count is measured three ways in the same run: memcpy of the same bytes (the
// practical ceiling), the straightforward baseline (HF apply_rotary_pos_emb
// done the eager-PyTorch way), and ropescale. Compare bytes_per_second.
//   build/bench/rotary_benchmark --benchmark_filter=llama3
#include <benchmark/benchmark.h>

#include <memory>

#include "ropescale/bench/rotary_bench.h"

namespace {

using ropescale::DType;

enum class Variant { Memcpy, Naive, Ropescale };

void Run(benchmark::State& state, const ropescale::RotaryBenchShape& shape, DType dt, Variant v, int threads) {
  ropescale::RotaryBenchCase c(shape, state.range(0), dt);
  for (auto _ : state) {
    switch (v) {
      case Variant::Memcpy: c.run_memcpy(threads); break;
      case Variant::Naive: c.run_naive(); break;
      case Variant::Ropescale: c.run_optimized(threads); break;
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * c.bytes_moved()));
}

int Register() {
  for (const auto& shape : ropescale::rotary_bench_shapes())
    for (DType dt : {DType::F32, DType::BF16})
      for (auto [v, name] : {std::pair{Variant::Memcpy, "memcpy"}, std::pair{Variant::Naive, "naive"},
                             std::pair{Variant::Ropescale, "ropescale"}}) {
        const std::string n = shape.name + "/" + std::string(ropescale::to_string(dt)) + "/" + name;
        benchmark::RegisterBenchmark(n.c_str(), [shape, dt, v = v](benchmark::State& s) { Run(s, shape, dt, v, 1); })
            ->Arg(1)->Arg(16)->Arg(512)->Arg(8192)->Unit(benchmark::kMicrosecond);
      }
  return 0;
}
const int registered = Register();

}  // namespace

BENCHMARK_MAIN();
