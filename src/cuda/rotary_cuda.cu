// CUDA rotary: one block per token (grid-stride over tokens); its threads walk
// the (head, pair) items of Q then K. Consecutive threads touch consecutive
// pairs, so half-split loads are two coalesced runs and interleaved loads are
// one coalesced run of 2-element vectors.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "ropescale/kernels/rotary_cuda.h"

namespace ropescale::cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

template <class T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

struct TensorArgs {
  const void* in;
  void* out;
  int heads;
  int64_t in_token_stride, in_head_stride, out_token_stride, out_head_stride;
};

struct KernelArgs {
  int64_t n_tokens;
  const int64_t* positions;
  int head_dim, rotary_dim;
  bool interleaved;
  TensorArgs q, k;
  DeviceAngles angles;
};

__device__ __forceinline__ void angle(const KernelArgs& a, int64_t pos, int j, float& c, float& s) {
  const int pairs = a.rotary_dim / 2;
  if (a.angles.table_cos) {
    const int64_t row = (pos - a.angles.table_first_position) * pairs + j;
    c = a.angles.table_cos[row];
    s = a.angles.table_sin[row];
  } else {
    // Angle in double, as the CPU path and build_cos_sin_table do.
    double sd, cd;
    sincos(static_cast<double>(pos) * a.angles.inv_freq[j], &sd, &cd);
    c = static_cast<float>(cd * a.angles.attention_factor);
    s = static_cast<float>(sd * a.angles.attention_factor);
  }
}

template <class T>
__global__ void rotary_kernel(KernelArgs a) {
  const int pairs = a.rotary_dim / 2;
  const int tail = a.head_dim - a.rotary_dim;
  const int q_items = a.q.heads * pairs, items = (a.q.heads + a.k.heads) * pairs;
  for (int64_t t = blockIdx.x; t < a.n_tokens; t += gridDim.x) {
    const int64_t pos = a.positions[t];
    for (int it = threadIdx.x; it < items; it += blockDim.x) {
      const bool is_q = it < q_items;
      const TensorArgs& x = is_q ? a.q : a.k;
      const int local = is_q ? it : it - q_items;
      const int h = local / pairs, j = local % pairs;
      const T* src = static_cast<const T*>(x.in) + t * x.in_token_stride + h * x.in_head_stride;
      T* dst = static_cast<T*>(x.out) + t * x.out_token_stride + h * x.out_head_stride;
      const int i0 = a.interleaved ? 2 * j : j, i1 = a.interleaved ? 2 * j + 1 : j + pairs;
      float c, s;
      angle(a, pos, j, c, s);
      const float x0 = to_f(src[i0]), x1 = to_f(src[i1]);
      dst[i0] = from_f<T>(x0 * c - x1 * s);
      dst[i1] = from_f<T>(x1 * c + x0 * s);
    }
    if (tail > 0 && (a.q.out != a.q.in || a.k.out != a.k.in)) {  // out of place: copy the pass-through tail
      const int tail_items = (a.q.heads + a.k.heads) * tail;
      for (int it = threadIdx.x; it < tail_items; it += blockDim.x) {
        const bool is_q = it < a.q.heads * tail;
        const TensorArgs& x = is_q ? a.q : a.k;
        if (x.out == x.in) continue;
        const int local = is_q ? it : it - a.q.heads * tail;
        const int h = local / tail, i = a.rotary_dim + local % tail;
        static_cast<T*>(x.out)[t * x.out_token_stride + h * x.out_head_stride + i] =
            static_cast<const T*>(x.in)[t * x.in_token_stride + h * x.in_head_stride + i];
      }
    }
  }
}

TensorArgs tensor_args(const RotaryTensor& in, const RotaryTensor& out) {
  const RotaryTensor& o = out.data ? out : in;
  return {in.data, o.data, in.n_heads, in.token_stride, in.head_stride, o.token_stride, o.head_stride};
}

}  // namespace

bool available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

void apply_rotary(const RotaryProblem& p, const DeviceAngles& angles, void* stream) {
  if (p.n_tokens == 0) return;
  if (p.rotary_dim < 2 || p.rotary_dim % 2 || p.rotary_dim > p.head_dim)
    throw std::invalid_argument("cuda::apply_rotary: rotary_dim must be even, >= 2 and <= head_dim");
  if (!p.positions) throw std::invalid_argument("cuda::apply_rotary: positions is null");
  if ((angles.table_cos == nullptr) == (angles.inv_freq == nullptr))
    throw std::invalid_argument("cuda::apply_rotary: set exactly one of the table and inv_freq");
  if (p.q.n_heads && p.k.n_heads && p.q.dtype != p.k.dtype)
    throw std::invalid_argument("cuda::apply_rotary: q and k must share a dtype");
  KernelArgs a{p.n_tokens, p.positions, p.head_dim, p.rotary_dim, p.layout == PairLayout::Interleaved,
               tensor_args(p.q, p.q_out), tensor_args(p.k, p.k_out), angles};
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>(p.n_tokens, 65535));
  auto s = static_cast<cudaStream_t>(stream);
  switch (p.q.n_heads ? p.q.dtype : p.k.dtype) {
    case DType::F32: rotary_kernel<float><<<blocks, threads, 0, s>>>(a); break;
    case DType::F16: rotary_kernel<__half><<<blocks, threads, 0, s>>>(a); break;
    case DType::BF16: rotary_kernel<__nv_bfloat16><<<blocks, threads, 0, s>>>(a); break;
  }
  check(cudaGetLastError(), "rotary kernel launch");
}

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
  return p;
}
void device_free(void* p) { cudaFree(p); }
void copy_to_device(void* d, const void* s, size_t n) { check(cudaMemcpy(d, s, n, cudaMemcpyHostToDevice), "H2D copy"); }
void copy_to_host(void* d, const void* s, size_t n) { check(cudaMemcpy(d, s, n, cudaMemcpyDeviceToHost), "D2H copy"); }
void copy_device_to_device(void* d, const void* s, size_t n) {
  check(cudaMemcpyAsync(d, s, n, cudaMemcpyDeviceToDevice), "D2D copy");
}
void synchronize() { check(cudaDeviceSynchronize(), "synchronize"); }

}  // namespace ropescale::cuda
