// CUDA twin of apply_rotary (built when nvcc is found; see CMake option
// ROPESCALE_CUDA). Same RotaryProblem, but every pointer — q, k, outputs,
// positions — is device memory, and the angles come from a device table or
// device inv_freq. No CUDA types in this header.
#pragma once

#include <cstdint>

#include "ropescale/kernels/rotary.h"

namespace ropescale::cuda {

// Device-resident angle sources (exactly one set).
struct DeviceAngles {
  const float* table_cos = nullptr;  // [positions × pairs], attention factor folded in
  const float* table_sin = nullptr;
  int64_t table_first_position = 0;
  int64_t table_positions = 0;
  const double* inv_freq = nullptr;  // d/2 entries
  double attention_factor = 1.0;
};

// True when a CUDA device is usable (tests skip otherwise).
bool available();

// `p.angles` is ignored; `angles` supplies them. Positions must lie inside the
// table (not checked on the device). Throws std::runtime_error on a CUDA error,
// std::invalid_argument on a malformed problem (host-side checks).
void apply_rotary(const RotaryProblem& p, const DeviceAngles& angles, void* stream = nullptr);

// Device memory helpers for tests and benchmarks.
void* device_alloc(size_t bytes);
void device_free(void* p);
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_device_to_device(void* dst, const void* src, size_t bytes);
void synchronize();

}  // namespace ropescale::cuda
