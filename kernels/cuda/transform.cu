// Fused impute -> clip -> scale on the GPU: each element read once and written once. The element
// formula and the argument checks are common/transform.h's (shared with the CPU kernels).
// Contiguous float32 input with cols % 4 == 0 takes 16-byte vector loads; other layouts use a
// 2-D strided kernel. Arithmetic in float64 for every input and output (float32 parameters would
// turn e.g. fill = 1e300, inv_scale = 1e-300 into inf * 0); parameters staged in shared memory.
#include <algorithm>
#include <type_traits>

#include "common/cuda_check.h"
#include "common/transform.h"
#include "cuda/common.cuh"
#include "cuda/transform.h"

namespace kf::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxSharedCols = 768;  // 6 params x 768 x 8 B = 36 KB

// Flat, contiguous x and out (rs == cols, cs == 1), float32 in, cols % 4 == 0: float4 loads.
template <typename O>
__global__ void __launch_bounds__(kThreads)
transform_vec4_kernel(const float4* __restrict__ x,  // [rows * cols / 4]
                      const double* __restrict__ params,  // [6, cols]
                      int64_t n4, int64_t cols, bool shared_params,
                      O* __restrict__ out) {  // [rows, cols] contiguous
  extern __shared__ double sp[];  // [6, cols] when shared_params
  if (shared_params) {
    for (int64_t i = threadIdx.x; i < 6 * cols; i += blockDim.x) sp[i] = params[i];
    __syncthreads();
  }
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < n4; v += stride) {
    const float4 in = x[v];
    const int64_t j0 = (v * 4) % cols;
    const double vals[4] = {in.x, in.y, in.z, in.w};
    double res[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t j = j0 + k;
      const double* q = shared_params ? sp : params;
      res[k] = impute_clip_scale<double>(vals[k], q[kFill * cols + j], q[kLo * cols + j], q[kHi * cols + j],
                                         q[kShift * cols + j], 0.0, q[kInvScale * cols + j], q[kOffset * cols + j]);
    }
    if constexpr (std::is_same<O, float>::value) {
      reinterpret_cast<float4*>(out)[v] = make_float4(float(res[0]), float(res[1]), float(res[2]), float(res[3]));
    } else {
      O o[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) o[k] = from_compute<O, double>(res[k]);
      // 4 x 16-bit = one 8-byte store
      reinterpret_cast<uint2*>(out)[v] = *reinterpret_cast<const uint2*>(o);
    }
  }
}

// Any layout: threads across columns (coalesced for row-major x), blocks down the rows.
template <typename T, typename C, typename O>
__global__ void __launch_bounds__(kThreads)
transform_strided_kernel(const T* __restrict__ x,  // [rows, cols], strides rs, cs
                         int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                         const double* __restrict__ params,  // [6, cols]
                         O* __restrict__ out, int64_t ors) {  // [rows, cols], row stride ors
  const int64_t total = rows * cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t r = i / cols, j = i - r * cols;
    const C v = static_cast<C>(x[r * rs + j * cs]);
    C sh_hi, sh_lo;
    split_shift<C>(__ldg(params + kShift * cols + j), sh_hi, sh_lo);
    const auto p = [&](int k) { return static_cast<C>(__ldg(params + k * cols + j)); };
    const C y = impute_clip_scale<C>(v, p(kFill), p(kLo), p(kHi), sh_hi, sh_lo, p(kInvScale), p(kOffset));
    out[r * ors + j] = from_compute<O, C>(y);
  }
}

template <typename T, typename C, typename O>
void launch(const Mat& x, const double* params, const Mat& out, cudaStream_t s) {
  const bool vec = std::is_same<T, float>::value && x.cs == 1 &&
                   x.rs == x.cols && out.rs == out.cols && x.cols % 4 == 0 &&
                   reinterpret_cast<uintptr_t>(x.data) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(out.data) % (4 * sizeof(O)) == 0;
  if constexpr (std::is_same<T, float>::value) {
    if (vec) {
      const int64_t n4 = x.rows * x.cols / 4;
      const bool shared = x.cols <= kMaxSharedCols;
      const size_t smem = shared ? 6 * x.cols * sizeof(double) : 0;
      transform_vec4_kernel<O><<<grid_for(n4, kThreads), kThreads, smem, s>>>(
          static_cast<const float4*>(x.data), params, n4, x.cols, shared, static_cast<O*>(out.data));
      KF_CUDA_CHECK_LAUNCH("transform_vec4_kernel");
      return;
    }
  }
  transform_strided_kernel<T, C, O><<<grid_for(x.rows * x.cols, kThreads), kThreads, 0, s>>>(
      static_cast<const T*>(x.data), x.rows, x.cols, x.rs, x.cs, params, static_cast<O*>(out.data), out.rs);
  KF_CUDA_CHECK_LAUNCH("transform_strided_kernel");
}

template <typename T>
void dispatch_out(const Mat& x, const double* params, const Mat& out, cudaStream_t s) {
  switch (out.dtype) {
    case DType::f32: return launch<T, double, float>(x, params, out, s);
    case DType::f64: return launch<T, double, double>(x, params, out, s);
    case DType::f16: return launch<T, double, __half>(x, params, out, s);
    case DType::bf16: return launch<T, double, __nv_bfloat16>(x, params, out, s);
    default: break;
  }
}

}  // namespace

void numeric_transform(const Mat& x_, const double* params, const Mat& out_, uintptr_t stream) {
  const TransformArgs a = make_transform_args(x_, params, out_);  // the checks of every launcher
  if (a.x.rows == 0 || a.x.cols == 0) return;
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  if (a.x.dtype == DType::f32) dispatch_out<float>(a.x, a.params, a.out, s);
  else dispatch_out<double>(a.x, a.params, a.out, s);
}

}  // namespace kf::cuda
