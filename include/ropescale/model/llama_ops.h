// The Llama block's dense operations, shared by inference (session.cpp) and
// training (src/train): one definition of the architecture's arithmetic.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <vector>

#include "ropescale/kernels/activation.h"

namespace ropescale {

// OpenBLAS runs single-threaded inside ropescale's pool (called by matmul; call
// it before using cblas directly).
void single_threaded_blas();

// Y[n × out] = X[n × in] · W[out × in]ᵀ. OpenBLAS runs single-threaded; large
// products are split by output columns across ropescale's pool (two thread
// pools on the same cores fight: prefill was 7× slower).
void matmul(const float* x, const std::vector<float>& w, float* y, int n, int in, int out, int threads);
// Several products of the same X (Q, K and V; W1 and W3) in one parallel
// section, each part taking its share of every output's rows: one
// synchronization instead of one per product (decode issues dozens per token).
struct MatmulTarget {
  const std::vector<float>* w;  // [out × in]
  float* y;                     // [n × out]
  int out;
};
void matmul_shared_input(const float* x, std::initializer_list<MatmulTarget> targets, int n, int in, int threads);

// y = x / rms(x) · w per row of `dim`; `inv_rms` (n values, optional) receives 1 / rms.
void rmsnorm(const float* x, const std::vector<float>& w, float* y, int n, int dim, float eps, float* inv_rms = nullptr);

// SwiGLU in place, h1 ← silu(h1) · h3: swiglu() in kernels/activation.h.

}  // namespace ropescale
