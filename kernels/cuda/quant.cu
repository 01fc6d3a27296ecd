// Row-wise symmetric int8 quantization on the GPU: one block per row, 16-byte vector loads when
// the row is contiguous and aligned; the row is read twice (absmax, then quantize) in one kernel,
// the second read served from L1/L2. Same formula bit for bit as csrc/cpu/quant.cpp.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "common/cuda_check.h"
#include "cpu/quant.h"
#include "cuda/common.cuh"
#include "cuda/quant.h"

namespace kf::cuda {
namespace {

constexpr int kThreads = 256;

// round half to even, saturate to [-127, 127]
__device__ __forceinline__ int8_t q8(float v) {
  v = fminf(fmaxf(rintf(v), -127.f), 127.f);
  return static_cast<int8_t>(__float2int_rn(v));
}

template <typename T, bool VEC>
struct RowIO {
  static constexpr int kVec = VEC ? 16 / sizeof(T) : 1;  // elements per 16-byte load
};

template <typename T, bool VEC>
__global__ void __launch_bounds__(kThreads)
quantize_rows_kernel(const T* __restrict__ x,  // [M, K], strides rs, cs (cs == 1 when VEC)
                     int64_t K, int64_t rs, int64_t cs,
                     int8_t* __restrict__ q, int64_t qrs,  // [M, K], row stride qrs
                     float* __restrict__ scale) {           // [M]
  constexpr int V = RowIO<T, VEC>::kVec;
  const int64_t m = blockIdx.x;
  const T* xr = x + m * rs;
  int8_t* qr = q + m * qrs;
  float amax = 0.f;
  int bad = 0;
  const int64_t nv = K / V;
  for (int64_t i = threadIdx.x; i < nv; i += kThreads) {
    alignas(16) T v[V];
    if constexpr (VEC) *reinterpret_cast<uint4*>(v) = reinterpret_cast<const uint4*>(xr)[i];
    else v[0] = xr[i * cs];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float a = fabsf(to_float<T>(v[j]));
      bad |= !(a <= FLT_MAX);
      amax = fmaxf(amax, a);
    }
  }
  // block reduction of (amax, bad)
  for (int o = 16; o > 0; o >>= 1) {
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    bad |= __shfl_xor_sync(0xffffffffu, bad, o);
  }
  __shared__ float s_amax[kThreads / 32];
  __shared__ int s_bad[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) { s_amax[warp] = amax; s_bad[warp] = bad; }
  __syncthreads();
  amax = 0.f; bad = 0;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) { amax = fmaxf(amax, s_amax[w]); bad |= s_bad[w]; }
  const bool tiny = !(amax >= kQuantMinAbsmax);
  const float inv = bad ? 0.f : (tiny ? 1.f : 127.f / amax);  // IEEE division (no fast-math)
  if (threadIdx.x == 0) scale[m] = bad ? __int_as_float(0x7fc00000) : (tiny ? 1.f : amax / 127.f);
  for (int64_t i = threadIdx.x; i < nv; i += kThreads) {
    alignas(16) T v[V];
    if constexpr (VEC) *reinterpret_cast<uint4*>(v) = reinterpret_cast<const uint4*>(xr)[i];
    else v[0] = xr[i * cs];
    alignas(8) int8_t o[V];
#pragma unroll
    for (int j = 0; j < V; ++j) o[j] = bad ? int8_t(0) : q8(to_float<T>(v[j]) * inv);
    if constexpr (V == 8) reinterpret_cast<uint2*>(qr)[i] = *reinterpret_cast<const uint2*>(o);
    else if constexpr (V == 4) reinterpret_cast<uint32_t*>(qr)[i] = *reinterpret_cast<const uint32_t*>(o);
    else qr[i] = o[0];
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
quantize_static_kernel(const T* __restrict__ x, int64_t M, int64_t K, int64_t rs, int64_t cs,  // x [M, K]
                       const float* __restrict__ scale,  // [1]
                       int8_t* __restrict__ q, int64_t qrs) {  // [M, K]
  const float inv = 1.f / __ldg(scale);
  const int64_t total = M * K, stride = int64_t(gridDim.x) * kThreads;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < total; i += stride) {
    const int64_t m = i / K, k = i - m * K;
    const float v = to_float<T>(x[m * rs + k * cs]);
    q[m * qrs + k] = v != v ? int8_t(0) : q8(v * inv);
  }
}

template <typename O>
__global__ void __launch_bounds__(kThreads)
dequantize_kernel(const int8_t* __restrict__ q, int64_t M, int64_t K, int64_t rs, int64_t cs,  // q [M, K]
                  const float* __restrict__ scale,  // [M]
                  O* __restrict__ out, int64_t ors) {  // [M, K]
  const int64_t total = M * K, stride = int64_t(gridDim.x) * kThreads;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < total; i += stride) {
    const int64_t m = i / K, k = i - m * K;
    out[m * ors + k] = from_compute<O, float>(static_cast<float>(q[m * rs + k * cs]) * __ldg(scale + m));
  }
}

template <typename T>
void rows_launch(const Mat& x, const Mat& q, float* scale, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const bool vec = x.cs == 1 && x.cols % V == 0 && x.rs % V == 0 && q.rs % V == 0 &&
                   reinterpret_cast<uintptr_t>(x.data) % 16 == 0 && reinterpret_cast<uintptr_t>(q.data) % V == 0;
  const T* xp = static_cast<const T*>(x.data);
  int8_t* qp = static_cast<int8_t*>(q.data);
  if (vec) quantize_rows_kernel<T, true><<<static_cast<unsigned>(x.rows), kThreads, 0, s>>>(xp, x.cols, x.rs, x.cs, qp, q.rs, scale);
  else quantize_rows_kernel<T, false><<<static_cast<unsigned>(x.rows), kThreads, 0, s>>>(xp, x.cols, x.rs, x.cs, qp, q.rs, scale);
  KF_CUDA_CHECK_LAUNCH("quantize_rows_kernel");
}

template <typename T>
void static_launch(const Mat& x, const float* scale, const Mat& q, cudaStream_t s) {
  quantize_static_kernel<T><<<grid_for(x.rows * x.cols, kThreads), kThreads, 0, s>>>(
      static_cast<const T*>(x.data), x.rows, x.cols, x.rs, x.cs, scale, static_cast<int8_t*>(q.data), q.rs);
  KF_CUDA_CHECK_LAUNCH("quantize_static_kernel");
}

template <typename O>
void deq_launch(const Mat& q, const float* scale, const Mat& out, cudaStream_t s) {
  dequantize_kernel<O><<<grid_for(q.rows * q.cols, kThreads), kThreads, 0, s>>>(
      static_cast<const int8_t*>(q.data), q.rows, q.cols, q.rs, q.cs, scale, static_cast<O*>(out.data), out.rs);
  KF_CUDA_CHECK_LAUNCH("dequantize_kernel");
}

void check_q(const Mat& x, const Mat& q) {
  require_dtype(x.dtype, {DType::f32, DType::f16, DType::bf16}, "x");
  require_dtype(q.dtype, {DType::i8}, "q");
  require(q.rows == x.rows && q.cols == x.cols, "q must have the shape of x");
  require(q.cs == 1 && q.rs >= q.cols, "q must have unit column stride");
  require(x.rows <= 0x7fffffff, "x has too many rows for one launch");
}

}  // namespace

void quantize_rows(const Mat& x, const Mat& q, float* scale, uintptr_t stream) {
  check_q(x, q);
  if (x.rows == 0) return;
  require_nonnull(scale, x.rows, "scale");
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  switch (x.dtype) {
    case DType::f32: return rows_launch<float>(x, q, scale, s);
    case DType::f16: return rows_launch<__half>(x, q, scale, s);
    default: return rows_launch<__nv_bfloat16>(x, q, scale, s);
  }
}

void quantize_static(const Mat& x, const float* scale, const Mat& q, uintptr_t stream) {
  check_q(x, q);
  if (x.rows == 0 || x.cols == 0) return;
  require_nonnull(scale, 1, "scale");
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  switch (x.dtype) {
    case DType::f32: return static_launch<float>(x, scale, q, s);
    case DType::f16: return static_launch<__half>(x, scale, q, s);
    default: return static_launch<__nv_bfloat16>(x, scale, q, s);
  }
}

void dequantize_rows(const Mat& q, const float* scale, const Mat& out, uintptr_t stream) {
  require_dtype(q.dtype, {DType::i8}, "q");
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require(out.rows == q.rows && out.cols == q.cols, "out must have the shape of q");
  require(out.cs == 1 && out.rs >= out.cols, "out must have unit column stride");
  if (q.rows == 0 || q.cols == 0) return;
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  switch (out.dtype) {
    case DType::f32: return deq_launch<float>(q, scale, out, s);
    case DType::f64: return deq_launch<double>(q, scale, out, s);
    case DType::f16: return deq_launch<__half>(q, scale, out, s);
    default: return deq_launch<__nv_bfloat16>(q, scale, out, s);
  }
}

}  // namespace kf::cuda
