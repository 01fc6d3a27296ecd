// Fused whole-table transform on the GPU, ONE launch (layout, checks and the numeric element maths:
// common/table.h and common/transform.h, shared with the CPU kernel): a thread per output element (grid-stride),
// so consecutive threads write consecutive columns of a row (coalesced stores, each element
// written exactly once); its column descriptor (kind, source, slot) says what to compute. The
// reads of x and of the codes are row-local gathers served by L1/L2: each input row is fetched
// from memory once. Numeric arithmetic in fp32 (fp64 when x or out is float64), with the shift
// split into hi + lo (split_shift).
#include "common/cuda_check.h"
#include "common/table.h"
#include "cuda/common.cuh"
#include "cuda/table.h"

namespace kf::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T, typename C, typename O>
__global__ void __launch_bounds__(kThreads)
table_kernel(const T* __restrict__ x, int64_t xrs, int64_t xcs,        // x [N, Fn]
             const int32_t* __restrict__ codes, int64_t crs, int64_t ccs,  // codes [N, Fc]
             TableSpec s, int64_t N, O* __restrict__ out, int64_t ors) {   // out [N, W]
  const int64_t total = N * s.W;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t Fn = s.Fn;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t r = e / s.W, w = e - r * s.W;
    const int kind = __ldg(s.col_kind + w);
    const int64_t src = __ldg(s.col_src + w);
    C y;
    if (kind == 0) {
      const double* p = s.params;
      const auto q = [&](int k) { return static_cast<C>(__ldg(p + k * Fn + src)); };
      C v = impute_clip<C>(static_cast<C>(x[r * xrs + src * xcs]), q(kFill), q(kLo), q(kHi));
      v = table_nonlinear<C>(v, __ldg(p + kFn * Fn + src), q(kLambda));
      C sh_hi, sh_lo;
      split_shift<C>(__ldg(p + kShift * Fn + src), sh_hi, sh_lo);
      y = scale_shift<C>(v, sh_hi, sh_lo, q(kInvScale), q(kOffset));
    } else if (kind == 1) {
      const T v = x[r * xrs + __ldg(s.ind_src + src) * xcs];
      y = v != v ? C(1) : C(0);
    } else {
      const int64_t code = codes[r * crs + src * ccs];
      const bool known = code >= 0 && code < __ldg(s.cat_k + src);
      if (kind == 3) {
        y = known ? static_cast<C>(code) : static_cast<C>(__ldg(s.cat_unk_value + src));
      } else {
        const int64_t slot = known ? __ldg(s.cat_tab + __ldg(s.cat_toff + src) + code) : __ldg(s.cat_unk + src);
        y = slot == __ldg(s.col_slot + w) ? C(1) : C(0);
      }
    }
    out[r * ors + w] = from_compute<O, C>(y);
  }
}

template <typename T, typename O>
void launch(const Mat& x, const Mat& codes, const TableSpec& s, const Mat& out, cudaStream_t st) {
  using C = typename std::conditional<std::is_same<T, double>::value || std::is_same<O, double>::value, double, float>::type;
  table_kernel<T, C, O><<<grid_for(out.rows * s.W, kThreads), kThreads, 0, st>>>(
      static_cast<const T*>(x.data), x.rs, x.cs, static_cast<const int32_t*>(codes.data), codes.rs, codes.cs, s,
      out.rows, static_cast<O*>(out.data), out.rs);
  KF_CUDA_CHECK_LAUNCH("table_kernel");
}

template <typename T>
void dispatch(const Mat& x, const Mat& codes, const TableSpec& s, const Mat& out, cudaStream_t st) {
  switch (out.dtype) {
    case DType::f32: return launch<T, float>(x, codes, s, out, st);
    case DType::f64: return launch<T, double>(x, codes, s, out, st);
    case DType::f16: return launch<T, __half>(x, codes, s, out, st);
    case DType::bf16: return launch<T, __nv_bfloat16>(x, codes, s, out, st);
    default: break;
  }
}

}  // namespace

void table_transform(const Mat& xnum, const Mat& codes, const TableSpec& s, const Mat& out, uintptr_t stream) {
  check_table_args(xnum, codes, s, out);
  if (out.rows == 0 || s.W == 0) return;
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  if (xnum.dtype == DType::f32) dispatch<float>(xnum, codes, s, out, st);
  else dispatch<double>(xnum, codes, s, out, st);
}

}  // namespace kf::cuda
