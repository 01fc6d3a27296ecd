// int8 GEMMs on the GPU.
//
// W8A8: a 128x128x64 block tile, 8 warps (4 along M x 2 along N, 32x64 per warp), int8 tensor-core
// mma.sync m16n8k32 with exact int32 accumulation, tiles staged through shared memory (rows padded
// by 16 bytes so the fragment reads are bank-conflict free), the next K tile prefetched into
// registers while the current one is multiplied. Out-of-range rows/columns and K past the end are
// loaded as zeros (so any K works, including K % 16 != 0); the fp32 epilogue (row scale, column
// scale, bias, activation, cast) is fused and stores are masked.
//
// Weight-only: M <= 16 runs a GEMV-style kernel (each warp owns 4 output columns, x staged in
// shared memory as fp32 in K chunks, 16-byte int8 weight loads, fp32 accumulation); larger M a
// 64x64 fp32 SIMT tile kernel that dequantizes the int8 tile in shared memory.
#include <algorithm>
#include <cmath>

#include "common/cuda_check.h"
#include "cpu/int8_check.h"  // the argument checks shared with the CPU launchers
#include "cpu/int8_gemm.h"
#include "cuda/common.cuh"
#include "cuda/int8_gemm.h"

namespace kf::cuda {
namespace {

constexpr int BM = 128, BN = 128, BK = 64, LDS = BK + 16;  // LDS: smem row stride in bytes
constexpr int kGemmThreads = 256;

__device__ __forceinline__ float activate(float v, int act) {
  if (act == 1) return v < 0.f ? 0.f : v;  // NaN stays NaN, as torch.relu
  if (act == 2) return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
  return v;
}

__device__ __forceinline__ void store_out(void* y, int dtype, int64_t off, float v) {
  if (dtype == static_cast<int>(DType::f32)) static_cast<float*>(y)[off] = v;
  else if (dtype == static_cast<int>(DType::f16)) static_cast<__half*>(y)[off] = __float2half_rn(v);
  else static_cast<__nv_bfloat16*>(y)[off] = __float2bfloat16_rn(v);
}

__device__ __forceinline__ void mma_s8(int32_t (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // the host launcher refuses devices below sm_80
#endif
}

// One 16-byte chunk of a [rows, K] int8 matrix (row stride ld), zero outside [rows, K).
template <bool VEC>
__device__ __forceinline__ uint4 load_chunk(const int8_t* __restrict__ p, int64_t r, int64_t rows, int64_t k,
                                            int64_t K, int64_t ld) {
  if (r >= rows) return make_uint4(0, 0, 0, 0);
  const int8_t* src = p + r * ld + k;
  if constexpr (VEC) {  // K % 16 == 0, so a chunk is entirely in or out of range
    return k < K ? __ldg(reinterpret_cast<const uint4*>(src)) : make_uint4(0, 0, 0, 0);
  } else {
    uint4 v;
    int8_t* b = reinterpret_cast<int8_t*>(&v);
#pragma unroll
    for (int j = 0; j < 16; ++j) b[j] = (k + j < K) ? src[j] : int8_t(0);
    return v;
  }
}

template <bool VEC>
__global__ void __launch_bounds__(kGemmThreads)
w8a8_mma_kernel(const int8_t* __restrict__ xq, int64_t xld,  // [M, K] row-major
                const int8_t* __restrict__ wq, int64_t wld,  // [N, K] row-major (= K x N column-major)
                int64_t M, int64_t N, int64_t K,
                const float* __restrict__ rsc,   // [M]
                const float* __restrict__ csc,   // [N]
                const float* __restrict__ bias,  // [N] or null
                int act, void* __restrict__ y, int ydtype, int64_t yld) {  // [M, N]
  __shared__ __align__(16) int8_t As[BM * LDS];
  __shared__ __align__(16) int8_t Bs[BN * LDS];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm = warp / 2, wn = warp % 2;  // warp tile origin: (wm * 32, wn * 64)
  const int g = lane / 4, t = lane % 4;    // mma fragment coordinates
  const int64_t bm = int64_t(blockIdx.y) * BM, bn = int64_t(blockIdx.x) * BN;

  int32_t acc[2][8][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0;

  // each thread moves 2 chunks of A and 2 of B per K tile: chunk c -> row c / 4, bytes (c % 4) * 16
  uint4 ra[2], rb[2];
  auto fetch = [&](int64_t k0) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int c = tid + i * kGemmThreads, r = c / 4, kc = (c % 4) * 16;
      ra[i] = load_chunk<VEC>(xq, bm + r, M, k0 + kc, K, xld);
      rb[i] = load_chunk<VEC>(wq, bn + r, N, k0 + kc, K, wld);
    }
  };
  fetch(0);
  for (int64_t k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int c = tid + i * kGemmThreads, r = c / 4, kc = (c % 4) * 16;
      *reinterpret_cast<uint4*>(As + r * LDS + kc) = ra[i];
      *reinterpret_cast<uint4*>(Bs + r * LDS + kc) = rb[i];
    }
    __syncthreads();
    if (k0 + BK < K) fetch(k0 + BK);  // global loads in flight during the mma below
#pragma unroll
    for (int kk = 0; kk < BK; kk += 32) {
      uint32_t af[2][4], bf[8][2];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        const int r = wm * 32 + mi * 16 + g;
        af[mi][0] = *reinterpret_cast<const uint32_t*>(As + r * LDS + kk + t * 4);
        af[mi][1] = *reinterpret_cast<const uint32_t*>(As + (r + 8) * LDS + kk + t * 4);
        af[mi][2] = *reinterpret_cast<const uint32_t*>(As + r * LDS + kk + 16 + t * 4);
        af[mi][3] = *reinterpret_cast<const uint32_t*>(As + (r + 8) * LDS + kk + 16 + t * 4);
      }
#pragma unroll
      for (int ni = 0; ni < 8; ++ni) {
        const int n = wn * 64 + ni * 8 + g;
        bf[ni][0] = *reinterpret_cast<const uint32_t*>(Bs + n * LDS + kk + t * 4);
        bf[ni][1] = *reinterpret_cast<const uint32_t*>(Bs + n * LDS + kk + 16 + t * 4);
      }
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 8; ++ni) mma_s8(acc[mi][ni], af[mi], bf[ni]);
    }
    __syncthreads();
  }

  // fused epilogue: c0, c1 at row g, columns 2t, 2t+1; c2, c3 at row g + 8
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t m = bm + wm * 32 + mi * 16 + g + h * 8;
      if (m >= M) continue;
      const float rs = __ldg(rsc + m);
#pragma unroll
      for (int ni = 0; ni < 8; ++ni)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t n = bn + wn * 64 + ni * 8 + t * 2 + e;
          if (n >= N) continue;
          float v = static_cast<float>(acc[mi][ni][h * 2 + e]) * rs * __ldg(csc + n);
          if (bias) v += __ldg(bias + n);
          store_out(y, ydtype, m * yld + n, activate(v, act));
        }
    }
}

// ---- weight-only, M <= 16 -------------------------------------------------------------------
constexpr int kGemvWarps = 8, kGemvChunk = 512;  // K chunk = 32 lanes x 16
// output columns per warp: 4, or 2 at 16 rows so the MT x cols accumulators stay in registers
__host__ __device__ constexpr int gemv_cols(int MT) { return MT >= 16 ? 2 : 4; }

template <typename T, int MT, bool VEC>
__global__ void __launch_bounds__(kGemvWarps * 32)
wonly_gemv_kernel(const T* __restrict__ x, int64_t xrs, int64_t xcs,  // [M, K]
                  const int8_t* __restrict__ wq, int64_t wld,         // [N, K]
                  int64_t M, int64_t N, int64_t K,
                  const float* __restrict__ wsc,   // [N]
                  const float* __restrict__ bias,  // [N] or null
                  int act, void* __restrict__ y, int ydtype, int64_t yld) {  // [M, N]
  __shared__ __align__(16) float xs[MT][kGemvChunk];  // fp32 copy of the current x chunk
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  constexpr int kGemvCols = gemv_cols(MT);
  const int64_t n0 = (int64_t(blockIdx.x) * kGemvWarps + warp) * kGemvCols;
  float acc[MT][kGemvCols];  // fp32 accumulation
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int c = 0; c < kGemvCols; ++c) acc[m][c] = 0.f;
  for (int64_t kc = 0; kc < K; kc += kGemvChunk) {
    __syncthreads();
    for (int i = threadIdx.x; i < MT * kGemvChunk; i += kGemvWarps * 32) {
      const int m = i / kGemvChunk, k = i % kGemvChunk;
      xs[m][k] = (m < M && kc + k < K) ? to_float<T>(x[m * xrs + (kc + k) * xcs]) : 0.f;
    }
    __syncthreads();
    const int64_t k = kc + lane * 16;
    if (k >= K) continue;
    // this lane's 16 weights of each column, as fp32 (columns past N read as zeros)
    float wf[kGemvCols][16];
#pragma unroll
    for (int c = 0; c < kGemvCols; ++c) {
      const int64_t n = n0 + c;
      alignas(16) int8_t w[16];
      if (n >= N) {
        *reinterpret_cast<uint4*>(w) = make_uint4(0, 0, 0, 0);
      } else if constexpr (VEC) {
        *reinterpret_cast<uint4*>(w) = __ldg(reinterpret_cast<const uint4*>(wq + n * wld + k));
      } else {
#pragma unroll
        for (int j = 0; j < 16; ++j) w[j] = (k + j < K) ? wq[n * wld + k + j] : int8_t(0);
      }
#pragma unroll
      for (int j = 0; j < 16; ++j) wf[c][j] = static_cast<float>(w[j]);
    }
    // one row of x at a time (16 fp32 from shared memory) against every column
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      const float4* xv = reinterpret_cast<const float4*>(&xs[m][lane * 16]);
      alignas(16) float xr[16];
#pragma unroll
      for (int j = 0; j < 4; ++j) *reinterpret_cast<float4*>(&xr[4 * j]) = xv[j];
#pragma unroll
      for (int c = 0; c < kGemvCols; ++c) {
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < 16; ++j) sum = fmaf(xr[j], wf[c][j], sum);
        acc[m][c] += sum;
      }
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int c = 0; c < kGemvCols; ++c)
      for (int o = 16; o > 0; o >>= 1) acc[m][c] += __shfl_xor_sync(0xffffffffu, acc[m][c], o);
  if (lane == 0) {
#pragma unroll
    for (int c = 0; c < kGemvCols; ++c) {
      const int64_t n = n0 + c;
      if (n >= N) break;
      const float s = __ldg(wsc + n), b = bias ? __ldg(bias + n) : 0.f;
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m >= M) break;
        float v = acc[m][c] * s;
        if (bias) v += b;
        store_out(y, ydtype, m * yld + n, activate(v, act));
      }
    }
  }
}

// ---- weight-only, any M: 64x64 fp32 SIMT tiles, 4x4 outputs per thread ---------------------
constexpr int TM = 64, TN = 64, TK = 16;

template <typename T>
__global__ void __launch_bounds__(256)
wonly_tile_kernel(const T* __restrict__ x, int64_t xrs, int64_t xcs,  // [M, K]
                  const int8_t* __restrict__ wq, int64_t wld,         // [N, K]
                  int64_t M, int64_t N, int64_t K,
                  const float* __restrict__ wsc, const float* __restrict__ bias,  // [N], [N] or null
                  int act, void* __restrict__ y, int ydtype, int64_t yld) {  // [M, N]
  __shared__ float As[TK][TM + 1], Bs[TK][TN + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t bm = int64_t(blockIdx.y) * TM, bn = int64_t(blockIdx.x) * TN;
  float acc[4][4] = {};  // fp32 accumulation
  for (int64_t k0 = 0; k0 < K; k0 += TK) {
    for (int i = threadIdx.x; i < TM * TK; i += 256) {
      const int r = i / TK, k = i % TK;
      const int64_t gm = bm + r, gn = bn + r, gk = k0 + k;
      As[k][r] = (gm < M && gk < K) ? to_float<T>(x[gm * xrs + gk * xcs]) : 0.f;
      Bs[k][r] = (gn < N && gk < K) ? static_cast<float>(wq[gn * wld + gk]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < TK; ++k) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) { a[i] = As[k][ty + 16 * i]; b[i] = Bs[k][tx + 16 * i]; }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = bm + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = bn + tx + 16 * j;
      if (n >= N) continue;
      float v = acc[i][j] * __ldg(wsc + n);
      if (bias) v += __ldg(bias + n);
      store_out(y, ydtype, m * yld + n, activate(v, act));
    }
  }
}

template <typename T>
void wonly_launch(const Mat& x, const Mat& wq, const float* wsc, const float* bias, int act, const Mat& y, cudaStream_t s) {
  const T* xp = static_cast<const T*>(x.data);
  const int8_t* wp = static_cast<const int8_t*>(wq.data);
  const int yd = static_cast<int>(y.dtype);
  if (x.rows <= 16) {
    const bool vec = x.cols % 16 == 0 && wq.rs % 16 == 0 && reinterpret_cast<uintptr_t>(wq.data) % 16 == 0;
    require(ceil_div(wq.rows, kGemvWarps * 2) <= 0x7fffffff, "N too large");
#define KF_GEMV(MT)                                                                                              \
  const dim3 grid(static_cast<unsigned>(ceil_div(wq.rows, kGemvWarps * gemv_cols(MT))));                        \
  if (vec) wonly_gemv_kernel<T, MT, true><<<grid, kGemvWarps * 32, 0, s>>>(xp, x.rs, x.cs, wp, wq.rs, x.rows,     \
      wq.rows, x.cols, wsc, bias, act, y.data, yd, y.rs);                                                         \
  else wonly_gemv_kernel<T, MT, false><<<grid, kGemvWarps * 32, 0, s>>>(xp, x.rs, x.cs, wp, wq.rs, x.rows,        \
      wq.rows, x.cols, wsc, bias, act, y.data, yd, y.rs);
    if (x.rows <= 1) { KF_GEMV(1) }
    else if (x.rows <= 4) { KF_GEMV(4) }
    else if (x.rows <= 8) { KF_GEMV(8) }
    else { KF_GEMV(16) }
#undef KF_GEMV
    KF_CUDA_CHECK_LAUNCH("wonly_gemv_kernel");
    return;
  }
  require(ceil_div(x.rows, TM) <= 65535, "M too large for one launch (at most 4194240 rows)");
  const dim3 grid(static_cast<unsigned>(ceil_div(wq.rows, TN)), static_cast<unsigned>(ceil_div(x.rows, TM)));
  wonly_tile_kernel<T><<<grid, 256, 0, s>>>(xp, x.rs, x.cs, wp, wq.rs, x.rows, wq.rows, x.cols, wsc, bias, act, y.data, yd, y.rs);
  KF_CUDA_CHECK_LAUNCH("wonly_tile_kernel");
}


}  // namespace

void int8_gemm(const Mat& xq, const Mat& wq, const float* row_scale, const float* col_scale, const float* bias,
               int act, const Mat& y, uintptr_t stream) {
  check_int8_gemm_args(xq, wq, row_scale, col_scale, act, y);
  if (xq.rows == 0 || wq.rows == 0) return;
  int dev = 0, major = 0;
  KF_CUDA_CHECK(cudaGetDevice(&dev));
  KF_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  require(major >= 8, "the CUDA int8 GEMM needs an sm_80+ GPU (int8 mma.sync m16n8k32); use backend='triton' or 'torch'");
  require(ceil_div(xq.rows, BM) <= 65535, "M too large for one launch (at most 8388480 rows)");
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  const dim3 grid(static_cast<unsigned>(ceil_div(wq.rows, BN)), static_cast<unsigned>(ceil_div(xq.rows, BM)));
  const bool vec = xq.cols % 16 == 0 && xq.rs % 16 == 0 && wq.rs % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(xq.data) % 16 == 0 && reinterpret_cast<uintptr_t>(wq.data) % 16 == 0;
  const auto* xp = static_cast<const int8_t*>(xq.data);
  const auto* wp = static_cast<const int8_t*>(wq.data);
  if (vec)
    w8a8_mma_kernel<true><<<grid, kGemmThreads, 0, s>>>(xp, xq.rs, wp, wq.rs, xq.rows, wq.rows, xq.cols, row_scale,
                                                        col_scale, bias, act, y.data, static_cast<int>(y.dtype), y.rs);
  else
    w8a8_mma_kernel<false><<<grid, kGemmThreads, 0, s>>>(xp, xq.rs, wp, wq.rs, xq.rows, wq.rows, xq.cols, row_scale,
                                                         col_scale, bias, act, y.data, static_cast<int>(y.dtype), y.rs);
  KF_CUDA_CHECK_LAUNCH("w8a8_mma_kernel");
}

void weight_only_gemm(const Mat& x, const Mat& wq, const float* w_scale, const float* bias, int act, const Mat& y,
                      uintptr_t stream) {
  check_weight_only_args(x, wq, w_scale, act, y);
  if (x.rows == 0 || wq.rows == 0) return;
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  switch (x.dtype) {
    case DType::f32: return wonly_launch<float>(x, wq, w_scale, bias, act, y, s);
    case DType::f16: return wonly_launch<__half>(x, wq, w_scale, bias, act, y, s);
    default: return wonly_launch<__nv_bfloat16>(x, wq, w_scale, bias, act, y, s);
  }
}

}  // namespace kf::cuda
