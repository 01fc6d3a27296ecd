// Fused impute -> clip -> scale on the CPU: OpenMP over rows, vectorised across columns.
#include "cpu/transform.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/half.h"
#include "common/simd.h"

namespace kf::cpu {
namespace {

// OutKind: 0 float32, 1 float64, 2 float16 bits, 3 bfloat16 bits
// Rows [r0, r1): p holds the parameters in the compute type C, [7, cols]: fill, lo, hi, shift,
// inv_scale, offset, shift_lo (the float64 shift split into hi + lo so float compute keeps the
// digits a single fp32 shift would lose; (v - hi) is exact near the shift).
template <typename T, typename C, int OutKind>
KF_INLINE void rows_body(const T* xd, int64_t xrs, int64_t xcs, int64_t r0, int64_t r1, int64_t cols,
                         const C* p, void* out_data, int64_t ors) {
  const C* __restrict fill = p;
  const C* __restrict lo = fill + cols;
  const C* __restrict hi = lo + cols;
  const C* __restrict shift = hi + cols;
  const C* __restrict inv = shift + cols;
  const C* __restrict off = inv + cols;
  const C* __restrict shift_lo = off + cols;
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict xr = xd + r * xrs;
    if constexpr (OutKind == 0 || OutKind == 1) {
      using O = std::conditional_t<OutKind == 0, float, double>;
      O* __restrict orow = static_cast<O*>(out_data) + r * ors;
      if (xcs == 1) {
#pragma omp simd
        for (int64_t j = 0; j < cols; ++j) {
          // every operand in a register first: the selects then if-convert and vectorise
          const C x0 = static_cast<C>(xr[j]), f = fill[j], l = lo[j], h = hi[j];
          C v = (x0 != x0) ? f : x0;
          v = v < l ? l : (v > h ? h : v);  // comparisons are false for NaN: an unimputed NaN stays
          orow[j] = static_cast<O>(((v - shift[j]) - shift_lo[j]) * inv[j] + off[j]);
        }
      } else {
        for (int64_t j = 0; j < cols; ++j) {
          C v = static_cast<C>(xr[j * xcs]);
          v = (v != v) ? fill[j] : v;
          v = v < lo[j] ? lo[j] : (v > hi[j] ? hi[j] : v);
          orow[j] = static_cast<O>(((v - shift[j]) - shift_lo[j]) * inv[j] + off[j]);
        }
      }
    } else {
      uint16_t* __restrict orow = static_cast<uint16_t*>(out_data) + r * ors;
      for (int64_t j = 0; j < cols; ++j) {
        C v = static_cast<C>(xr[j * xcs]);
        v = (v != v) ? fill[j] : v;
        v = v < lo[j] ? lo[j] : (v > hi[j] ? hi[j] : v);
        const float y = static_cast<float>(((v - shift[j]) - shift_lo[j]) * inv[j] + off[j]);  // rounds twice
        orow[j] = OutKind == 2 ? float_to_half_bits(y) : float_to_bf16_bits(y);
      }
    }
  }
}

// Non-template leaves cloned per ISA (AVX2 / AVX-512 when the CPU has them).
#define KF_TRANSFORM_ROWS(NAME, T, C, K)                                                              \
  KF_CLONES void NAME(const T* xd, int64_t xrs, int64_t xcs, int64_t r0, int64_t r1, int64_t cols,   \
                      const C* p, void* out, int64_t ors) {                                           \
    rows_body<T, C, K>(xd, xrs, xcs, r0, r1, cols, p, out, ors);                                      \
  }
KF_TRANSFORM_ROWS(rows_f32_f32, float, double, 0)
KF_TRANSFORM_ROWS(rows_f32_f64, float, double, 1)
KF_TRANSFORM_ROWS(rows_f32_f16, float, double, 2)
KF_TRANSFORM_ROWS(rows_f32_bf16, float, double, 3)
KF_TRANSFORM_ROWS(rows_f64_f32, double, double, 0)
KF_TRANSFORM_ROWS(rows_f64_f64, double, double, 1)
KF_TRANSFORM_ROWS(rows_f64_f16, double, double, 2)
KF_TRANSFORM_ROWS(rows_f64_bf16, double, double, 3)
#undef KF_TRANSFORM_ROWS

template <typename T, typename C, int OutKind>
void run(const Mat& x, const double* params, const Mat& out,
         void (*rows)(const T*, int64_t, int64_t, int64_t, int64_t, int64_t, const C*, void*, int64_t)) {
  const int64_t rows_n = x.rows, cols = x.cols;
  std::vector<C> p(7 * cols);  // parameters converted once to the compute type
  for (int64_t i = 0; i < 6 * cols; ++i) p[i] = static_cast<C>(params[i]);
  for (int64_t j = 0; j < cols; ++j)
    p[6 * cols + j] = static_cast<C>(params[3 * cols + j] - static_cast<double>(p[3 * cols + j]));
  const T* xd = static_cast<const T*>(x.data);
  constexpr int64_t kChunk = 256;  // rows per call of the cloned leaf
  const int64_t nchunks = (rows_n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t r0 = c * kChunk, r1 = std::min(rows_n, r0 + kChunk);
    rows(xd, x.rs, x.cs, r0, r1, cols, p.data(), out.data, out.rs);
  }
}

// float64 input is computed in float64 and rounded once to the output type
void dispatch_out_f32(const Mat& x, const double* params, const Mat& out) {
  switch (out.dtype) {
    case DType::f32: return run<float, double, 0>(x, params, out, rows_f32_f32);
    case DType::f64: return run<float, double, 1>(x, params, out, rows_f32_f64);
    case DType::f16: return run<float, double, 2>(x, params, out, rows_f32_f16);
    case DType::bf16: return run<float, double, 3>(x, params, out, rows_f32_bf16);
    default: break;
  }
}
void dispatch_out_f64(const Mat& x, const double* params, const Mat& out) {
  switch (out.dtype) {
    case DType::f32: return run<double, double, 0>(x, params, out, rows_f64_f32);
    case DType::f64: return run<double, double, 1>(x, params, out, rows_f64_f64);
    case DType::f16: return run<double, double, 2>(x, params, out, rows_f64_f16);
    case DType::bf16: return run<double, double, 3>(x, params, out, rows_f64_bf16);
    default: break;
  }
}

}  // namespace

void numeric_transform(const Mat& x, const double* params, const Mat& out) {
  require_dtype(x.dtype, {DType::f32, DType::f64}, "x");
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require(out.rows == x.rows && out.cols == x.cols, "out must have the shape of x");
  require(out.cs == 1 && out.rs >= out.cols, "out must have unit column stride and row stride >= cols");
  require_nonnull(x.data, x.rows * x.cols, "x");
  require_nonnull(out.data, out.rows * out.cols, "out");
  require_nonnull(params, x.cols, "params");
  if (x.dtype == DType::f32) dispatch_out_f32(x, params, out);
  else dispatch_out_f64(x, params, out);
}

}  // namespace kf::cpu
