// Shared device helpers: typed loads and stores, and the float64 Chan merge.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cstdint>

#include "common/cuda_check.h"

namespace kf::cuda {

template <typename T> __device__ __forceinline__ float to_float(T v) { return static_cast<float>(v); }
template <> __device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename O, typename C> __device__ __forceinline__ O from_compute(C v) { return static_cast<O>(v); }
template <> __device__ __forceinline__ __half from_compute<__half, float>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_compute<__nv_bfloat16, float>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_compute<__half, double>(double v) { return __double2half(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_compute<__nv_bfloat16, double>(double v) { return __double2bfloat16(v); }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grid for a grid-stride kernel over `work` items: enough blocks to fill the device (8 per SM),
// never more than the work needs.
inline int grid_for(int64_t work, int threads) {
  int dev = 0, sms = 0;
  KF_CUDA_CHECK(cudaGetDevice(&dev));
  KF_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t want = ceil_div(work, threads);
  return static_cast<int>(want < 1 ? 1 : (want < int64_t(sms) * 8 ? want : int64_t(sms) * 8));
}

}  // namespace kf::cuda
