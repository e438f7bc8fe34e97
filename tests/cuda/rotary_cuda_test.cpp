// The CUDA rotary against the CPU scalar twin. Skips (loudly) without a GPU.
#include "ropescale/kernels/rotary_cuda.h"

#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "ropescale/rope/frequencies.h"

namespace ropescale {
namespace {

struct DeviceBuffer {
  void* p;
  explicit DeviceBuffer(size_t n) : p(cuda::device_alloc(n)) {}
  ~DeviceBuffer() { cuda::device_free(p); }
};

void compare_case(DType dt, PairLayout layout, int head_dim, int rotary_dim, bool use_table, bool in_place) {
  const int tokens = 37, hq = 5, hk = 2;
  std::mt19937 rng(head_dim * 7 + rotary_dim);
  std::vector<int64_t> pos(tokens);
  for (auto& p : pos) p = 1000 + rng() % 4000;
  RopeSpec s;
  s.type = RopeType::Yarn;
  s.rotary_dim = rotary_dim;
  s.head_dim = head_dim;
  s.factor = 4;
  s.original_max_position = 2048;
  const auto f = compute_frequencies(s);
  const auto table = build_cos_sin_table(f, 1000, 5000);
  const size_t es = dtype_size(dt);
  std::vector<uint8_t> q(tokens * hq * head_dim * es), k(tokens * hk * head_dim * es);
  std::uniform_real_distribution<float> v(-1, 1);
  for (auto* b : {&q, &k}) {
    std::vector<float> values(b->size() / es);
    for (auto& x : values) x = v(rng);
    store_floats(dt, values.data(), b->data(), values.size());
  }
  // CPU reference (scalar twin), in place on copies.
  auto q_ref = q, k_ref = k;
  RotaryProblem cpu;
  cpu.n_tokens = tokens;
  cpu.positions = pos.data();
  cpu.head_dim = head_dim;
  cpu.rotary_dim = rotary_dim;
  cpu.layout = layout;
  cpu.q = {q_ref.data(), dt, hq, int64_t(hq) * head_dim, head_dim};
  cpu.k = {k_ref.data(), dt, hk, int64_t(hk) * head_dim, head_dim};
  cpu.angles.table = &table;
  apply_rotary_scalar(cpu);

  DeviceBuffer dq(q.size()), dk(k.size()), dqo(q.size()), dko(k.size()), dpos(pos.size() * 8),
      dcos(table.cos.size() * 4), dsin(table.sin.size() * 4), dinv(f.inv_freq.size() * 8);
  cuda::copy_to_device(dq.p, q.data(), q.size());
  cuda::copy_to_device(dk.p, k.data(), k.size());
  cuda::copy_to_device(dpos.p, pos.data(), pos.size() * 8);
  cuda::copy_to_device(dcos.p, table.cos.data(), table.cos.size() * 4);
  cuda::copy_to_device(dsin.p, table.sin.data(), table.sin.size() * 4);
  cuda::copy_to_device(dinv.p, f.inv_freq.data(), f.inv_freq.size() * 8);
  RotaryProblem gpu = cpu;
  gpu.positions = static_cast<const int64_t*>(dpos.p);
  gpu.q.data = dq.p;
  gpu.k.data = dk.p;
  if (!in_place) {
    gpu.q_out = gpu.q, gpu.q_out.data = dqo.p;
    gpu.k_out = gpu.k, gpu.k_out.data = dko.p;
  }
  cuda::DeviceAngles angles;
  if (use_table) {
    angles.table_cos = static_cast<const float*>(dcos.p);
    angles.table_sin = static_cast<const float*>(dsin.p);
    angles.table_first_position = table.first_position;
    angles.table_positions = table.positions;
  } else {
    angles.inv_freq = static_cast<const double*>(dinv.p);
    angles.attention_factor = f.attention_factor;
  }
  cuda::apply_rotary(gpu, angles);
  cuda::synchronize();
  std::vector<uint8_t> q_gpu(q.size()), k_gpu(k.size());
  cuda::copy_to_host(q_gpu.data(), in_place ? dq.p : dqo.p, q.size());
  cuda::copy_to_host(k_gpu.data(), in_place ? dk.p : dko.p, k.size());
  // Tolerance as in the CPU twin test: a few f32 ulps (FMA contraction, device
  // sincos on the on-the-fly path), plus one 16-bit spacing for f16/bf16.
  auto val = [&](const std::vector<uint8_t>& b, size_t i) { return load_float(dt, b.data(), i); };
  const double spacing = dt == DType::BF16 ? 0x1p-7 : dt == DType::F16 ? 0x1p-10 : 0;
  int bad = 0;
  for (auto [got, want] : {std::pair{&q_gpu, &q_ref}, std::pair{&k_gpu, &k_ref}})
    for (size_t i = 0; i < got->size() / es && bad < 5; ++i) {
      const double g = val(*got, i), w = val(*want, i);
      if (std::abs(g - w) > 2e-6 * 1.3 * 2 + spacing * (std::abs(w) + 1e-6)) {
        ADD_FAILURE() << "element " << i << ": GPU " << g << " vs CPU " << w;
        ++bad;
      }
    }
}

TEST(RotaryCuda, MatchesScalarTwin) {
  if (!cuda::available()) GTEST_SKIP() << "SKIPPED LOUDLY: no CUDA device on this machine";
  for (DType dt : {DType::F32, DType::F16, DType::BF16})
    for (PairLayout layout : {PairLayout::HalfSplit, PairLayout::Interleaved})
      for (auto [hd, rd] : {std::pair{128, 128}, std::pair{128, 96}, std::pair{64, 2}, std::pair{80, 32}})
        for (bool table : {true, false})
          for (bool in_place : {true, false}) {
            SCOPED_TRACE(::testing::Message() << to_string(dt) << " " << to_string(layout) << " hd " << hd << " rd " << rd
                                              << (table ? " table" : " inv_freq") << (in_place ? " in-place" : " out"));
            compare_case(dt, layout, hd, rd, table, in_place);
          }
}

}  // namespace
}  // namespace ropescale
