// Fused LayerNorm / RMSNorm on the GPU: a thread block per row (grid-stride over rows), 16-byte
// vector loads when the rows are aligned, warp-shuffle + shared-memory reductions, fp32
// accumulation. Rows of up to 4 * kThreads packs per thread step (hidden <= 8192 for 16-bit,
// 4096 for fp32) are held in registers between the passes (P > 0); longer rows loop over the row
// and re-read it from cache (P == 0). Either way DRAM sees one read of x (and dy) and one write of
// y (dx) per element.
#include <algorithm>
#include <string>
#include <type_traits>

#include "common/cuda_check.h"
#include "cuda/common.cuh"
#include "cpu/norm.h"  // check_norm_*_args
#include "cuda/norm.h"

namespace kf::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// Sum of one float over the block; every thread gets the result. `red` holds kWarps floats.
__device__ __forceinline__ float block_sum(float v, float* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // red may still be read from the previous reduction
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = lane < kWarps ? red[lane] : 0.0f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
  return t;
}

// Two sums at once (the backward's sum(g) and sum(g * xhat)); `red` holds 2 * kWarps floats.
__device__ __forceinline__ float2 block_sum2(float a, float b, float* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    a += __shfl_xor_sync(0xffffffffu, a, o);
    b += __shfl_xor_sync(0xffffffffu, b, o);
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) { red[warp] = a; red[kWarps + warp] = b; }
  __syncthreads();
  float s = lane < kWarps ? red[lane] : 0.0f, t = lane < kWarps ? red[kWarps + lane] : 0.0f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    s += __shfl_xor_sync(0xffffffffu, s, o);
    t += __shfl_xor_sync(0xffffffffu, t, o);
  }
  return make_float2(s, t);
}

// Calls f(p, i) for this thread's packs i = threadIdx.x + p * kThreads < nv of a row held in
// registers (P packs per thread, p unrolled so per-pack arrays stay in registers).
template <int P, typename F>
__device__ __forceinline__ void for_my_packs(int64_t nv, F&& f) {
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t i = threadIdx.x + int64_t(p) * kThreads;
    if (i < nv) f(p, i);
  }
}

// Forward output of pack i: (x - mean) * rstd * weight + bias, fp32, converted to T.
template <typename T, int V>
__device__ __forceinline__ Pack<T, V> fwd_pack(const Pack<T, V>& px, int64_t i, float mu, float rs,
                                               const float* __restrict__ weight, const float* __restrict__ bias) {
  Pack<T, V> o;
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int64_t j = i * V + k;
    float t = (to_float(px.v[k]) - mu) * rs;
    if (weight) t *= __ldg(weight + j);
    if (bias) t += __ldg(bias + j);
    o.v[k] = from_compute<T, float>(t);
  }
  return o;
}

// Backward row sums of pack i: c1 += g, c2 += g * xhat (g = dy * weight), fp32.
template <typename T, int V>
__device__ __forceinline__ void bwd_sums(const Pack<T, V>& px, const Pack<T, V>& pd, int64_t i, float mu, float rs,
                                         const float* __restrict__ weight, float& c1, float& c2) {
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const float xh = (to_float(px.v[k]) - mu) * rs;
    const float g = weight ? to_float(pd.v[k]) * __ldg(weight + i * V + k) : to_float(pd.v[k]);
    c1 += g;
    c2 += g * xh;
  }
}

// dx of pack i = rstd * (g - m1 - xhat * m2); acc(k, dy, xhat) accumulates the weight / bias sums.
template <typename T, int V, typename Acc>
__device__ __forceinline__ Pack<T, V> bwd_pack(const Pack<T, V>& px, const Pack<T, V>& pd, int64_t i, float mu,
                                               float rs, float m1, float m2, const float* __restrict__ weight,
                                               Acc&& acc) {
  Pack<T, V> o;
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const float d = to_float(pd.v[k]);
    const float xh = (to_float(px.v[k]) - mu) * rs;
    const float g = weight ? d * __ldg(weight + i * V + k) : d;
    o.v[k] = from_compute<T, float>(rs * (g - m1 - xh * m2));
    acc(k, d, xh);
  }
  return o;
}

// V elements per thread step: 16 / sizeof(T) when the rows are 16-byte aligned, else 1.
template <typename T, int V, int P>
__global__ void __launch_bounds__(kThreads)
norm_fwd_kernel(const T* __restrict__ x,  // [rows, n] contiguous
                const float* __restrict__ weight,  // [n] or null
                const float* __restrict__ bias,  // [n] or null
                int64_t rows, int64_t n, float eps, bool rms,
                T* __restrict__ y,  // [rows, n] contiguous
                float* __restrict__ mean,  // [rows] or null (RMSNorm)
                float* __restrict__ rstd) {  // [rows]
  __shared__ float red[kWarps];
  const float inv_n = 1.0f / static_cast<float>(n);
  const int64_t nv = n / V;  // n % V == 0 by the launcher
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Pack<T, V>* xr = reinterpret_cast<const Pack<T, V>*>(x + r * n);
    Pack<T, V>* yr = reinterpret_cast<Pack<T, V>*>(y + r * n);
    if constexpr (P > 0) {
      Pack<T, V> px[P];  // this thread's packs i = threadIdx.x + p * kThreads of the row
      float s = 0.0f;
      for_my_packs<P>(nv, [&](int p, int64_t i) {
        px[p] = xr[i];
#pragma unroll
        for (int k = 0; k < V; ++k) s += to_float(px[p].v[k]);
      });
      const float mu = rms ? 0.0f : block_sum(s, red) * inv_n;
      float ss = 0.0f;
      for_my_packs<P>(nv, [&](int p, int64_t) {
#pragma unroll
        for (int k = 0; k < V; ++k) {
          const float d = to_float(px[p].v[k]) - mu;
          ss += d * d;
        }
      });
      const float rs = rsqrtf(block_sum(ss, red) * inv_n + eps);
      if (threadIdx.x == 0) {
        if (mean) mean[r] = mu;
        rstd[r] = rs;
      }
      for_my_packs<P>(nv, [&](int p, int64_t i) { yr[i] = fwd_pack(px[p], i, mu, rs, weight, bias); });
    } else {  // rows too long for registers: loop over the row, re-reading it from cache
      float mu = 0.0f;
      if (!rms) {
        // each thread sums n / kThreads values here (thousands for long rows): an fp32 running sum
        // of values with a large mean would lose their deviations, so the thread's sum is fp64
        double s = 0.0;
        for (int64_t i = threadIdx.x; i < nv; i += kThreads) {
          const Pack<T, V> p = xr[i];
#pragma unroll
          for (int k = 0; k < V; ++k) s += static_cast<double>(to_float(p.v[k]));
        }
        mu = block_sum(static_cast<float>(s), red) * inv_n;
      }
      // sum of squared deviations on the second (cached) read: no cancellation for large means
      float ss = 0.0f;
      for (int64_t i = threadIdx.x; i < nv; i += kThreads) {
        const Pack<T, V> p = xr[i];
#pragma unroll
        for (int k = 0; k < V; ++k) {
          const float d = to_float(p.v[k]) - mu;
          ss += d * d;
        }
      }
      const float rs = rsqrtf(block_sum(ss, red) * inv_n + eps);
      if (threadIdx.x == 0) {
        if (mean) mean[r] = mu;
        rstd[r] = rs;
      }
      for (int64_t i = threadIdx.x; i < nv; i += kThreads) yr[i] = fwd_pack(xr[i], i, mu, rs, weight, bias);
    }
  }
}

// Block b handles rows b, b + gridDim.x, ...; a thread always owns the same columns, so it
// accumulates its block's partial dweight / dbias row without races or atomics: in registers,
// written once at the end (P > 0), or in place in global memory after zeroing it (P == 0): the
// caller's rows are overwritten either way.
template <typename T, int V, int P>
__global__ void __launch_bounds__(kThreads)
norm_bwd_kernel(const T* __restrict__ dy,  // [rows, n] contiguous
                const T* __restrict__ x,  // [rows, n] contiguous
                const float* __restrict__ weight,  // [n] or null
                const float* __restrict__ mean,  // [rows] or null (RMSNorm)
                const float* __restrict__ rstd,  // [rows]
                int64_t rows, int64_t n, bool rms,
                T* __restrict__ dx,  // [rows, n] contiguous
                float* __restrict__ dwp,  // [gridDim.x, n] or null
                float* __restrict__ dbp) {  // [gridDim.x, n] or null
  __shared__ float red[2 * kWarps];
  const float inv_n = 1.0f / static_cast<float>(n);
  const int64_t nv = n / V;
  float* dw = dwp ? dwp + static_cast<int64_t>(blockIdx.x) * n : nullptr;
  float* db = dbp ? dbp + static_cast<int64_t>(blockIdx.x) * n : nullptr;
  if constexpr (P > 0) {
    float dwa[P][V], dba[P][V];  // fp32 partial sums for this thread's columns
#pragma unroll
    for (int p = 0; p < P; ++p)
#pragma unroll
      for (int k = 0; k < V; ++k) dwa[p][k] = dba[p][k] = 0.0f;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
      const Pack<T, V>* xr = reinterpret_cast<const Pack<T, V>*>(x + r * n);
      const Pack<T, V>* dyr = reinterpret_cast<const Pack<T, V>*>(dy + r * n);
      Pack<T, V>* dxr = reinterpret_cast<Pack<T, V>*>(dx + r * n);
      const float mu = (rms || !mean) ? 0.0f : mean[r], rs = rstd[r];
      Pack<T, V> px[P], pd[P];
      float c1 = 0.0f, c2 = 0.0f;  // fp32 sums of g and g * xhat
      for_my_packs<P>(nv, [&](int p, int64_t i) {
        px[p] = xr[i];
        pd[p] = dyr[i];
        bwd_sums(px[p], pd[p], i, mu, rs, weight, c1, c2);
      });
      const float2 c = block_sum2(c1, c2, red);
      const float m1 = rms ? 0.0f : c.x * inv_n, m2 = c.y * inv_n;
      for_my_packs<P>(nv, [&](int p, int64_t i) {
        dxr[i] = bwd_pack(px[p], pd[p], i, mu, rs, m1, m2, weight, [&](int k, float d, float xh) {
          dwa[p][k] += d * xh;
          dba[p][k] += d;
        });
      });
    }
    for_my_packs<P>(nv, [&](int p, int64_t i) {
#pragma unroll
      for (int k = 0; k < V; ++k) {
        if (dw) dw[i * V + k] = dwa[p][k];
        if (db) db[i * V + k] = dba[p][k];
      }
    });
  } else {  // rows too long for registers: partial sums accumulated in place in global memory
    for (int64_t j = threadIdx.x; j < nv * V; j += kThreads) {  // overwritten: the caller need not zero them
      if (dw) dw[j] = 0.0f;
      if (db) db[j] = 0.0f;
    }
    __syncthreads();
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
      const Pack<T, V>* xr = reinterpret_cast<const Pack<T, V>*>(x + r * n);
      const Pack<T, V>* dyr = reinterpret_cast<const Pack<T, V>*>(dy + r * n);
      const float mu = (rms || !mean) ? 0.0f : mean[r], rs = rstd[r];
      float c1 = 0.0f, c2 = 0.0f;  // fp32 sums of g and g * xhat
      for (int64_t i = threadIdx.x; i < nv; i += kThreads) bwd_sums(xr[i], dyr[i], i, mu, rs, weight, c1, c2);
      const float2 c = block_sum2(c1, c2, red);
      const float m1 = rms ? 0.0f : c.x * inv_n, m2 = c.y * inv_n;
      Pack<T, V>* dxr = reinterpret_cast<Pack<T, V>*>(dx + r * n);
      for (int64_t i = threadIdx.x; i < nv; i += kThreads) {
        dxr[i] = bwd_pack(xr[i], dyr[i], i, mu, rs, m1, m2, weight, [&](int k, float d, float xh) {
          const int64_t j = i * V + k;
          if (dw) dw[j] += d * xh;
          if (db) db[j] += d;
        });
      }
    }
  }
}

int sm_count() {
  int dev = 0, sms = 0;
  KF_CUDA_CHECK(cudaGetDevice(&dev));
  KF_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return sms;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Packs per thread kept in registers for a row of nv packs: 1, 2 or 4, or 0 (loop and re-read).
int packs_per_thread(int64_t nv) {
  const int64_t need = ceil_div(nv, kThreads);
  return need <= 1 ? 1 : need <= 2 ? 2 : need <= 4 ? 4 : 0;
}

// Calls f(std::integral_constant<int, P>) for the runtime choice p.
template <typename F>
void with_packs(int p, F&& f) {
  switch (p) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    default: return f(std::integral_constant<int, 0>{});
  }
}

template <typename T>
void fwd(const Mat& x, const float* w, const float* b, float eps, bool rms, const Mat& y, float* mean, float* rstd,
         cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const int grid = static_cast<int>(std::min<int64_t>(x.rows, int64_t(sm_count()) * 16));
  const T* xp = static_cast<const T*>(x.data);
  T* yp = static_cast<T*>(y.data);
  if (x.cols % V == 0 && aligned16(xp) && aligned16(yp)) {
    with_packs(packs_per_thread(x.cols / V), [&](auto p) {
      norm_fwd_kernel<T, V, decltype(p)::value><<<grid, kThreads, 0, s>>>(xp, w, b, x.rows, x.cols, eps, rms, yp, mean, rstd);
    });
  } else {
    with_packs(packs_per_thread(x.cols), [&](auto p) {
      norm_fwd_kernel<T, 1, decltype(p)::value><<<grid, kThreads, 0, s>>>(xp, w, b, x.rows, x.cols, eps, rms, yp, mean, rstd);
    });
  }
  KF_CUDA_CHECK_LAUNCH("norm_fwd_kernel");
}

template <typename T>
void bwd(const Mat& dy, const Mat& x, const float* w, const float* mean, const float* rstd, bool rms, const Mat& dx,
         float* dwp, float* dbp, int64_t blocks, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  // the grid is the partial-sum row count, so the caller's blocks fixes the summation order
  const int grid = static_cast<int>(blocks > 0 ? blocks : std::min<int64_t>(x.rows, int64_t(sm_count()) * 16));
  if (blocks == 0) dwp = dbp = nullptr;
  const T* dyp = static_cast<const T*>(dy.data);
  const T* xp = static_cast<const T*>(x.data);
  T* dxp = static_cast<T*>(dx.data);
  if (x.cols % V == 0 && aligned16(dyp) && aligned16(xp) && aligned16(dxp)) {
    with_packs(packs_per_thread(x.cols / V), [&](auto p) {
      norm_bwd_kernel<T, V, decltype(p)::value><<<grid, kThreads, 0, s>>>(dyp, xp, w, mean, rstd, x.rows, x.cols, rms, dxp, dwp, dbp);
    });
  } else {
    with_packs(packs_per_thread(x.cols), [&](auto p) {
      norm_bwd_kernel<T, 1, decltype(p)::value><<<grid, kThreads, 0, s>>>(dyp, xp, w, mean, rstd, x.rows, x.cols, rms, dxp, dwp, dbp);
    });
  }
  KF_CUDA_CHECK_LAUNCH("norm_bwd_kernel");
}

}  // namespace

void norm_fwd(const Mat& x, const float* weight, const float* bias, double eps, bool rms, const Mat& y,
              float* mean, float* rstd, uintptr_t stream) {
  check_norm_fwd_args(x, bias, eps, rms, y, mean, rstd);
  if (x.rows == 0 || x.cols == 0) return;
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  const float e = static_cast<float>(eps);
  switch (x.dtype) {
    case DType::f32: return fwd<float>(x, weight, bias, e, rms, y, mean, rstd, s);
    case DType::f16: return fwd<__half>(x, weight, bias, e, rms, y, mean, rstd, s);
    default: return fwd<__nv_bfloat16>(x, weight, bias, e, rms, y, mean, rstd, s);
  }
}

void norm_bwd(const Mat& dy, const Mat& x, const float* weight, const float* mean, const float* rstd, bool rms,
              const Mat& dx, float* dweight_partial, float* dbias_partial, int64_t blocks, uintptr_t stream) {
  check_norm_bwd_args(dy, x, mean, rstd, rms, dx, blocks);
  if (x.rows == 0 || x.cols == 0) return;
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  switch (x.dtype) {
    case DType::f32: return bwd<float>(dy, x, weight, mean, rstd, rms, dx, dweight_partial, dbias_partial, blocks, s);
    case DType::f16: return bwd<__half>(dy, x, weight, mean, rstd, rms, dx, dweight_partial, dbias_partial, blocks, s);
    default:
      return bwd<__nv_bfloat16>(dy, x, weight, mean, rstd, rms, dx, dweight_partial, dbias_partial, blocks, s);
  }
}

}  // namespace kf::cuda
