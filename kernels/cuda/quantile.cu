// Exact column quantiles on the GPU by radix select over the values' bit patterns.
// Every float maps to an unsigned key with the same order (common/quantile.h, shared with the
// CPU selection); NaN is skipped. Each q reads two order statistics (ranks lo, hi of numpy's
// linear rule), so a column carries R = 2 nq ranks, each with a key prefix and a remaining rank.
// One pass per 8-bit digit, most significant first (4 passes for float32, 8 for float64):
//   hist kernel  grid (row chunks, columns): per element and rank whose prefix matches the key's
//                higher digits, count the current digit in a shared-memory histogram [ranks, 256],
//                then add it to the global histogram [cols, R, 256] (64-bit atomics, skipping
//                empty bins). The first pass matches every rank, so only rank 0's histogram is
//                built and its total is the column's non-NaN count n.
//   scan kernel  one thread per (column, rank): on the first pass turn n and q into the rank
//                (-1 when n == 0), then walk the 256 bins to the digit holding the rank, append
//                it to the prefix and subtract the counts below it.
// After the last pass the prefix is the key of the order statistic; the final kernel maps keys
// back to values and applies numpy's interpolation (shared with the CPU in common/quantile.h).
// Every pass reads the column once: 4 (8) reads of x in total; reads down a column of a
// row-major x are strided (each warp touches 32 rows), which L2 absorbs across column blocks.
#include <algorithm>
#include <cmath>
#include <string>

#include "common/cuda_check.h"
#include "common/quantile.h"
#include "cuda/common.cuh"
#include "cuda/quantile.h"

namespace kf::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunkRows = 8192;  // rows per hist block (32 per thread)
constexpr int kRankGroup = 16;        // ranks histogrammed per sweep of a chunk (16 KB shared)
constexpr int kBins = 256;

template <typename T> struct KeyOf;
template <> struct KeyOf<float> {
  using K = unsigned int;
  static constexpr int kBits = 32;
  __device__ static K key(float v) { return float_key(v); }
};
template <> struct KeyOf<double> {
  using K = unsigned long long;
  static constexpr int kBits = 64;
  __device__ static K key(double v) { return static_cast<K>(float_key(v)); }
};

__device__ __forceinline__ double value_of(unsigned long long key, bool is_f32) {
  if (is_f32) return static_cast<double>(key_value(static_cast<uint32_t>(key)));
  return key_value(static_cast<uint64_t>(key));
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
quantile_hist_kernel(const T* __restrict__ x,  // [rows, cols], strides rs, cs
                     int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                     const unsigned long long* __restrict__ prefix,  // [cols, R]
                     int R, int shift, bool first,
                     unsigned long long* __restrict__ hist) {  // [cols, R, 256]
  using K = typename KeyOf<T>::K;
  __shared__ unsigned int sh[kRankGroup * kBins];
  __shared__ K pre[kRankGroup];
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kChunkRows;
  const int64_t r1 = rows < r0 + kChunkRows ? rows : r0 + kChunkRows;
  const int ranks = first ? 1 : R;  // first pass: every rank sees the same histogram
  for (int64_t j = blockIdx.y; j < cols; j += gridDim.y) {
    const T* col = x + j * cs;
    for (int g0 = 0; g0 < ranks; g0 += kRankGroup) {
      const int g = min(kRankGroup, ranks - g0);
      for (int i = threadIdx.x; i < g * kBins; i += kThreads) sh[i] = 0;
      if (threadIdx.x < g) pre[threadIdx.x] = static_cast<K>(prefix[j * R + g0 + threadIdx.x]);
      __syncthreads();
      for (int64_t r = r0 + threadIdx.x; r < r1; r += kThreads) {
        const T v = col[r * rs];
        if (v != v) continue;  // NaN: not a value
        const K key = KeyOf<T>::key(v);
        const unsigned int d = static_cast<unsigned int>(key >> shift) & (kBins - 1);
        if (first) {
          atomicAdd(&sh[d], 1u);
        } else {
          for (int k = 0; k < g; ++k)  // shift + 8 < kBits after the first pass
            if (((key ^ pre[k]) >> (shift + 8)) == 0) atomicAdd(&sh[k * kBins + d], 1u);
        }
      }
      __syncthreads();
      for (int i = threadIdx.x; i < g * kBins; i += kThreads) {
        const unsigned int c = sh[i];
        if (c) atomicAdd(&hist[(j * R + g0 + i / kBins) * kBins + (i % kBins)], static_cast<unsigned long long>(c));
      }
      __syncthreads();
    }
  }
}

__global__ void quantile_scan_kernel(const unsigned long long* __restrict__ hist,  // [cols, R, 256]
                                     const double* __restrict__ q,  // [nq]
                                     int64_t cols, int R, int shift, bool first,
                                     unsigned long long* __restrict__ prefix,  // [cols, R]
                                     long long* __restrict__ krem,             // [cols, R]
                                     long long* __restrict__ count) {          // [cols]
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= cols * R) return;
  const int64_t j = idx / R;
  const int rr = static_cast<int>(idx % R);
  const unsigned long long* h = hist + (j * R + (first ? 0 : rr)) * kBins;
  long long k;
  unsigned long long pre;
  if (first) {
    long long n = 0;
    for (int d = 0; d < kBins; ++d) n += static_cast<long long>(h[d]);
    if (rr == 0) count[j] = n;
    if (n == 0) {
      krem[idx] = -1;
      prefix[idx] = 0;
      return;
    }
    const QuantileIndex qi = quantile_index(n, q[rr / 2]);
    k = (rr % 2 == 0) ? qi.lo : qi.hi;
    pre = 0;
  } else {
    k = krem[idx];
    if (k < 0) return;
    pre = prefix[idx];
  }
  long long below = 0;
  int d = 0;
  for (; d < kBins - 1; ++d) {
    const long long c = static_cast<long long>(h[d]);
    if (k < below + c) break;
    below += c;
  }
  prefix[idx] = pre | (static_cast<unsigned long long>(d) << shift);
  krem[idx] = k - below;
}

__global__ void quantile_final_kernel(const unsigned long long* __restrict__ prefix,  // [cols, R]
                                      const long long* __restrict__ count,            // [cols]
                                      const double* __restrict__ q,                   // [nq]
                                      int64_t nq, int64_t cols, bool is_f32,
                                      double* __restrict__ out) {  // [nq, cols]
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= nq * cols) return;
  const int64_t i = idx / cols, j = idx % cols;
  const long long n = count[j];
  if (n == 0) {
    out[idx] = __longlong_as_double(0x7ff8000000000000ll);  // NaN: no value in the column
    return;
  }
  const QuantileIndex qi = quantile_index(n, q[i]);
  const int64_t R = 2 * nq;
  const double a = value_of(prefix[j * R + 2 * i], is_f32);
  const double b = value_of(prefix[j * R + 2 * i + 1], is_f32);
  out[idx] = quantile_lerp(a, b, qi.gamma);
}

struct Layout {
  int64_t hist, prefix, krem, count, total;
};

Layout layout(int64_t cols, int64_t nq) {
  const int64_t R = 2 * nq;
  Layout l;
  l.hist = 0;
  l.prefix = l.hist + cols * R * kBins * 8;
  l.krem = l.prefix + cols * R * 8;
  l.count = l.krem + cols * R * 8;
  l.total = l.count + cols * 8;
  return l;
}

template <typename T>
void run(const Mat& x, const double* q, int64_t nq, double* out, char* ws, cudaStream_t s) {
  const int64_t cols = x.cols, R = 2 * nq;
  const Layout l = layout(cols, nq);
  auto* hist = reinterpret_cast<unsigned long long*>(ws + l.hist);
  auto* prefix = reinterpret_cast<unsigned long long*>(ws + l.prefix);
  auto* krem = reinterpret_cast<long long*>(ws + l.krem);
  auto* count = reinterpret_cast<long long*>(ws + l.count);
  const int64_t chunks = std::max<int64_t>(1, ceil_div(x.rows, kChunkRows));
  require(chunks < (int64_t(1) << 31), "x has too many rows for one launch");
  const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(std::min<int64_t>(cols, 65535)));
  const unsigned scan_blocks = static_cast<unsigned>(ceil_div(cols * R, kThreads));
  constexpr int kBits = KeyOf<T>::kBits;
  KF_CUDA_CHECK(cudaMemsetAsync(prefix, 0, static_cast<size_t>(cols * R * 8), s));
  for (int shift = kBits - 8; shift >= 0; shift -= 8) {
    const bool first = shift == kBits - 8;
    KF_CUDA_CHECK(cudaMemsetAsync(hist, 0, static_cast<size_t>(cols * R * kBins * 8), s));
    quantile_hist_kernel<T><<<grid, kThreads, 0, s>>>(static_cast<const T*>(x.data), x.rows, cols, x.rs, x.cs,
                                                      prefix, static_cast<int>(R), shift, first, hist);
    KF_CUDA_CHECK_LAUNCH("quantile_hist_kernel");
    quantile_scan_kernel<<<scan_blocks, kThreads, 0, s>>>(hist, q, cols, static_cast<int>(R), shift, first,
                                                          prefix, krem, count);
    KF_CUDA_CHECK_LAUNCH("quantile_scan_kernel");
  }
  const unsigned final_blocks = static_cast<unsigned>(ceil_div(nq * cols, kThreads));
  quantile_final_kernel<<<final_blocks, kThreads, 0, s>>>(prefix, count, q, nq, cols, sizeof(T) == 4, out);
  KF_CUDA_CHECK_LAUNCH("quantile_final_kernel");
}

}  // namespace

int64_t column_quantiles_workspace_bytes(int64_t rows, int64_t cols, int64_t nq) {
  (void)rows;
  return layout(cols, nq).total;
}

void column_quantiles(const Mat& x, const double* q, int64_t nq, double* out, void* workspace,
                      int64_t workspace_bytes, uintptr_t stream) {
  check_column_quantiles_args(x, q, nq, out, /*check_q=*/false);  // q is device memory
  if (x.cols == 0 || nq == 0) return;
  require(nq <= (int64_t(1) << 24), "too many quantiles");
  const int64_t need = column_quantiles_workspace_bytes(x.rows, x.cols, nq);
  require(workspace != nullptr && workspace_bytes >= need, "workspace must hold " + std::to_string(need) + " bytes");
  require(ceil_div(x.cols * nq * 2, kThreads) < (int64_t(1) << 31), "x has too many columns for one launch");
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  char* ws = static_cast<char*>(workspace);
  if (x.dtype == DType::f32) run<float>(x, q, nq, out, ws, s);
  else run<double>(x, q, nq, out, ws, s);
}

}  // namespace kf::cuda
