// Column statistics on the GPU in one read of x.
// Kernel 1: a block owns a tile of up to 32 columns x kRowsPerBlock rows; each thread keeps a
//   Welford summary in float64 (float32 input too: fp32 squares overflow past 1.8e19 and lose
//   denormals) of one column, the block merges them in float64
//   and writes one partial per (row block, column). No atomics: the result is deterministic.
// Kernel 2: per column, the exact multi-way Chan merge of the partials in float64:
//   N = sum n_i, mean = sum n_i mean_i / N, M2 = sum M2_i + sum n_i (mean_i - mean)^2.
#include <algorithm>
#include <cfloat>
#include <type_traits>
#include <cmath>

#include "common/cuda_check.h"
#include "common/stats.h"
#include "cuda/common.cuh"
#include "cuda/stats.h"

namespace kf::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 32;            // columns per block
constexpr int kRowsPerBlock = 2048;  // rows per block

struct Partial { double n, nan, mean, m2, mn, mx; };

template <typename T>
__global__ void __launch_bounds__(kThreads)
stats_partial_kernel(const T* __restrict__ x,  // [rows, cols], strides rs, cs
                     int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                     Partial* __restrict__ part) {  // [row_blocks, cols]
  using A = double;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int width = static_cast<int>((cols - c0 < kTile ? cols - c0 : int64_t(kTile)));
  const int lanes_per_row = width;            // threads that share one row
  const int row_groups = kThreads / width;    // rows processed in parallel
  const int t = threadIdx.x;
  const int col = t % width, grp = t / width;
  const bool active = grp < row_groups;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock;
  const int64_t r1 = rows < r0 + kRowsPerBlock ? rows : r0 + kRowsPerBlock;

  A n = 0, mean = 0, m2 = 0, mn = INFINITY, mx = -INFINITY;
  float nan = 0;
  if (active) {
    const T* p = x + (c0 + col) * cs;
#pragma unroll 4
    for (int64_t r = r0 + grp; r < r1; r += row_groups) {
      const A v = static_cast<A>(p[r * rs]);
      if (isfinite(v)) {
        n += 1;
        const A d = v - mean;
        mean += d / n;
        m2 += d * (v - mean);
        mn = fmin(mn, v);
        mx = fmax(mx, v);
      } else if (v != v) {
        nan += 1;
      }
    }
  }
  (void)lanes_per_row;
  __shared__ Partial sh[kThreads];
  sh[t] = Partial{static_cast<double>(n), static_cast<double>(nan), static_cast<double>(mean),
                  static_cast<double>(m2), static_cast<double>(mn), static_cast<double>(mx)};
  __syncthreads();
  if (t < width) {  // thread t merges its column's summaries from every row group (float64)
    Partial a = sh[t];
    for (int g = 1; g < row_groups; ++g) {
      const Partial b = sh[g * width + t];
      a.nan += b.nan;
      a.mn = fmin(a.mn, b.mn);
      a.mx = fmax(a.mx, b.mx);
      if (b.n > 0) {
        const double nt = a.n + b.n, d = b.mean - a.mean;
        a.mean += d * (b.n / nt);
        a.m2 += b.m2 + d * d * (a.n * b.n / nt);
        a.n = nt;
      }
    }
    part[static_cast<int64_t>(blockIdx.x) * cols + c0 + t] = a;
  }
}

__global__ void __launch_bounds__(kThreads)
stats_merge_kernel(const Partial* __restrict__ part,  // [nblocks, cols]
                   int64_t nblocks, int64_t cols,
                   double* __restrict__ out) {  // [6, cols]
  const int64_t j = blockIdx.x;
  __shared__ double s0[kThreads], s1[kThreads], s2[kThreads], s3[kThreads];
  // pass 1: totals of n, nan, n * mean; min, max
  double n = 0, nan = 0, sm = 0, mn = INFINITY, mx = -INFINITY;
  for (int64_t b = threadIdx.x; b < nblocks; b += blockDim.x) {
    const Partial p = part[b * cols + j];
    n += p.n; nan += p.nan; sm += p.n * p.mean;
    mn = fmin(mn, p.mn); mx = fmax(mx, p.mx);
  }
  s0[threadIdx.x] = n; s1[threadIdx.x] = nan; s2[threadIdx.x] = sm; s3[threadIdx.x] = mn;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      s0[threadIdx.x] += s0[threadIdx.x + s];
      s1[threadIdx.x] += s1[threadIdx.x + s];
      s2[threadIdx.x] += s2[threadIdx.x + s];
      s3[threadIdx.x] = fmin(s3[threadIdx.x], s3[threadIdx.x + s]);
    }
    __syncthreads();
  }
  const double N = s0[0], NAN_ = s1[0], MIN = s3[0];
  const double mean = N > 0 ? s2[0] / N : 0.0;
  __syncthreads();
  // pass 2: M2 = sum M2_i + n_i (mean_i - mean)^2; max
  double m2 = 0;
  for (int64_t b = threadIdx.x; b < nblocks; b += blockDim.x) {
    const Partial p = part[b * cols + j];
    const double d = p.mean - mean;
    m2 += p.m2 + p.n * d * d;
  }
  s0[threadIdx.x] = m2; s3[threadIdx.x] = mx;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      s0[threadIdx.x] += s0[threadIdx.x + s];
      s3[threadIdx.x] = fmax(s3[threadIdx.x], s3[threadIdx.x + s]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    out[0 * cols + j] = N;
    out[1 * cols + j] = NAN_;
    out[2 * cols + j] = mean;
    out[3 * cols + j] = s0[0];
    out[4 * cols + j] = MIN;
    out[5 * cols + j] = s3[0];
  }
}

}  // namespace

int64_t column_stats_workspace_bytes(int64_t rows, int64_t cols) {
  const int64_t nb = std::max<int64_t>(1, ceil_div(rows, kRowsPerBlock));
  return nb * cols * static_cast<int64_t>(sizeof(Partial));
}

void column_stats(const Mat& x, double* out, void* workspace, int64_t workspace_bytes, uintptr_t stream) {
  check_column_stats_args(x, out);
  if (x.cols == 0) return;
  const int64_t need = column_stats_workspace_bytes(x.rows, x.cols);
  require(workspace != nullptr && workspace_bytes >= need,
          "workspace must hold " + std::to_string(need) + " bytes");
  const int64_t nb = std::max<int64_t>(1, ceil_div(x.rows, kRowsPerBlock));
  const int64_t ntiles = ceil_div(x.cols, kTile);
  require(nb < (int64_t(1) << 31) && ntiles < 65536, "x is too large for one launch");
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  auto* part = static_cast<Partial*>(workspace);
  dim3 grid(static_cast<unsigned>(nb), static_cast<unsigned>(ntiles));
  if (x.dtype == DType::f32)
    stats_partial_kernel<float><<<grid, kThreads, 0, s>>>(static_cast<const float*>(x.data), x.rows, x.cols, x.rs, x.cs, part);
  else
    stats_partial_kernel<double><<<grid, kThreads, 0, s>>>(static_cast<const double*>(x.data), x.rows, x.cols, x.rs, x.cs, part);
  KF_CUDA_CHECK_LAUNCH("stats_partial_kernel");
  stats_merge_kernel<<<static_cast<unsigned>(x.cols), kThreads, 0, s>>>(part, nb, x.cols, out);
  KF_CUDA_CHECK_LAUNCH("stats_merge_kernel");
}

}  // namespace kf::cuda
