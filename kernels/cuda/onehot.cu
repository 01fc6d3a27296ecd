// One-hot and ordinal encoding on the GPU (argument checks and the code -> slot rule:
// common/onehot.h, shared with the CPU kernels). The one-hot output dominates the traffic (W outputs per
// F int32 codes read), so threads run along output columns: stores coalesce, the few code and
// table reads of a row hit L1/L2. A contiguous output takes 16-byte vector stores.
#include <algorithm>
#include <type_traits>

#include "common/cuda_check.h"
#include "common/onehot.h"
#include "cuda/common.cuh"
#include "cuda/onehot.h"

namespace kf::cuda {
namespace {

constexpr int kThreads = 256;

struct Layout {
  const int32_t* __restrict__ codes;  // [rows, F], strides crs, ccs
  int64_t crs, ccs, F;
  const int64_t* __restrict__ feat;  // [4, F]: out_offset, width, table_offset, K
  const int32_t* __restrict__ table;  // [T]
  int64_t T;
  const int32_t* __restrict__ slots;  // [2, S]: column, position in block
  int64_t S;
  int32_t* __restrict__ errors;  // [F]

  // The 1's position within column f's block for row r (-1 none), counting errors once per value
  // (at the block's position 0, the thread that owns the first output of the block).
  __device__ __forceinline__ int32_t lit(int64_t r, int64_t f, int32_t k) const {
    const int32_t code = __ldg(codes + r * crs + f * ccs);
    const int64_t K = __ldg(feat + 3 * F + f);
    const int64_t t = __ldg(feat + 2 * F + f) + code_slot(code, K);
    const int32_t o = (t >= 0 && t < T) ? __ldg(table + t) : -2;
    if (o == -2 && k == 0) atomicAdd(errors + f, 1);
    return o;
  }
};

// Any output layout: one thread per (row, slot) for slots [slot_begin, S); slots < W are written.
template <typename O>
__global__ void __launch_bounds__(kThreads)
one_hot_kernel(Layout L, int64_t rows, int64_t slot_begin, int64_t W,
               O* __restrict__ out, int64_t ors) {  // out [rows, W], row stride ors
  const int64_t n = L.S - slot_begin, total = rows * n;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const O one = from_compute<O, float>(1.f), zero = from_compute<O, float>(0.f);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t r = i / n, s = slot_begin + (i - r * n);
    const int32_t f = __ldg(L.slots + s), k = __ldg(L.slots + L.S + s);
    const int32_t o = L.lit(r, f, k);
    if (s < W) out[r * ors + s] = (o == k) ? one : zero;
  }
}

// Contiguous out [rows, W] with rows * W % VEC == 0: VEC consecutive outputs per thread, one
// 16-byte store.
template <typename O, int VEC>
__global__ void __launch_bounds__(kThreads)
one_hot_vec_kernel(Layout L, int64_t n_vec, int64_t W, O* __restrict__ out) {  // out [rows * W]
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const O one = from_compute<O, float>(1.f), zero = from_compute<O, float>(0.f);
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < n_vec; v += stride) {
    int64_t r = (v * VEC) / W, c = v * VEC - r * W;
    alignas(16) O vals[VEC];
#pragma unroll
    for (int t = 0; t < VEC; ++t) {
      const int32_t f = __ldg(L.slots + c), k = __ldg(L.slots + L.S + c);
      vals[t] = (L.lit(r, f, k) == k) ? one : zero;
      if (++c == W) { c = 0; ++r; }
    }
    reinterpret_cast<uint4*>(out)[v] = *reinterpret_cast<const uint4*>(vals);
  }
}

template <typename O>
__global__ void __launch_bounds__(kThreads)
ordinal_kernel(const int32_t* __restrict__ codes, int64_t rows, int64_t F, int64_t crs, int64_t ccs,  // codes [rows, F]
               const int64_t* __restrict__ feat,  // [3, F]: table_offset, K, error bits
               const double* __restrict__ table, int64_t T,  // [T]
               O* __restrict__ out, int64_t ors,  // [rows, F], row stride ors
               int32_t* __restrict__ errors) {  // [F]
  const int64_t total = rows * F;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t r = i / F, j = i - r * F;
    const int32_t code = __ldg(codes + r * crs + j * ccs);
    const int64_t K = __ldg(feat + F + j), bits = __ldg(feat + 2 * F + j);
    const int64_t slot = code_slot(code, K);
    const int64_t t = __ldg(feat + j) + slot;
    const bool err = (slot == K && (bits & 1)) || (slot == K + 1 && (bits & 2)) || t < 0 || t >= T;
    double v = err ? 0.0 : __ldg(table + t);
    if (err) atomicAdd(errors + j, 1);
    if constexpr (std::is_same<O, int64_t>::value) out[r * ors + j] = (v == v) ? static_cast<int64_t>(v) : 0;
    else if constexpr (std::is_same<O, double>::value) out[r * ors + j] = v;
    else out[r * ors + j] = from_compute<O, float>(static_cast<float>(v));
  }
}

template <typename O>
void launch_one_hot(const Layout& L, const Mat& out, cudaStream_t s) {
  constexpr int VEC = 16 / sizeof(O);
  const int64_t rows = out.rows, W = out.cols;
  O* o = static_cast<O*>(out.data);
  int64_t slot_begin = 0;
  if (W > 0 && (out.rs == W || rows == 1) && (rows * W) % VEC == 0 && reinterpret_cast<uintptr_t>(o) % 16 == 0) {
    const int64_t n_vec = rows * W / VEC;
    one_hot_vec_kernel<O, VEC><<<grid_for(n_vec, kThreads), kThreads, 0, s>>>(L, n_vec, W, o);
    KF_CUDA_CHECK_LAUNCH("one_hot_vec_kernel");
    slot_begin = W;  // only the check-only slots are left
  }
  if (L.S > slot_begin && rows > 0) {
    one_hot_kernel<O><<<grid_for(rows * (L.S - slot_begin), kThreads), kThreads, 0, s>>>(L, rows, slot_begin, W, o, out.rs);
    KF_CUDA_CHECK_LAUNCH("one_hot_kernel");
  }
}

template <typename O>
void launch_ordinal(const Mat& codes, const int64_t* feat, const double* table, int64_t T, const Mat& out,
                    int32_t* errors, cudaStream_t s) {
  ordinal_kernel<O><<<grid_for(codes.rows * codes.cols, kThreads), kThreads, 0, s>>>(
      static_cast<const int32_t*>(codes.data), codes.rows, codes.cols, codes.rs, codes.cs, feat, table, T,
      static_cast<O*>(out.data), out.rs, errors);
  KF_CUDA_CHECK_LAUNCH("ordinal_kernel");
}

}  // namespace

void one_hot(const Mat& codes, const int64_t* feat, const int32_t* table, int64_t table_size,
             const int32_t* slots, int64_t n_slots, const Mat& out, int32_t* errors, uintptr_t stream) {
  make_one_hot_args(codes, feat, table, table_size, slots, n_slots, out, errors);  // the checks of both launchers
  // the device kernels work per output column through slots
  require(n_slots >= out.cols, "slots must describe every output column");
  require_nonnull(slots, n_slots, "slots");
  if (codes.rows == 0 || n_slots == 0) return;
  const Layout L{static_cast<const int32_t*>(codes.data), codes.rs, codes.cs, codes.cols, feat, table, table_size,
                 slots, n_slots, errors};
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  switch (out.dtype) {
    case DType::f32: return launch_one_hot<float>(L, out, s);
    case DType::f64: return launch_one_hot<double>(L, out, s);
    case DType::f16: return launch_one_hot<__half>(L, out, s);
    case DType::bf16: return launch_one_hot<__nv_bfloat16>(L, out, s);
    default: break;
  }
}

void ordinal_encode(const Mat& codes, const int64_t* feat, const double* table, int64_t table_size,
                    const Mat& out, int32_t* errors, uintptr_t stream) {
  make_ordinal_args(codes, feat, table, table_size, out, errors);  // the checks of both launchers
  if (codes.rows == 0 || codes.cols == 0) return;
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  switch (out.dtype) {
    case DType::f32: return launch_ordinal<float>(codes, feat, table, table_size, out, errors, s);
    case DType::f64: return launch_ordinal<double>(codes, feat, table, table_size, out, errors, s);
    case DType::f16: return launch_ordinal<__half>(codes, feat, table, table_size, out, errors, s);
    case DType::bf16: return launch_ordinal<__nv_bfloat16>(codes, feat, table, table_size, out, errors, s);
    case DType::i64: return launch_ordinal<int64_t>(codes, feat, table, table_size, out, errors, s);
    default: break;
  }
}

}  // namespace kf::cuda
