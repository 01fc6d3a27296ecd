// The fused numeric transform family (impute -> clip -> scale): its arguments, their checks and
// the element formula, defined once here and used by the CPU (csrc/cpu/transform.cpp), CUDA
// (kernels/cuda/transform.cu) and whole-table (cpu/table.cpp, cuda/table.cu) kernels.
#pragma once
#include <cstdint>

#include "common/array.h"

#if defined(__CUDACC__)
#define KF_HD __host__ __device__ __forceinline__
#else
#define KF_HD inline
#endif

namespace kf {

// Rows of the float64 parameter block params [6, cols] (contiguous, row k at params + k * cols).
enum TransformParam : int { kFill = 0, kLo = 1, kHi = 2, kShift = 3, kInvScale = 4, kOffset = 5, kTransformParams = 6 };

// Everything a numeric_transform launcher needs, checked once by make_transform_args.
struct TransformArgs {
  Mat x;                 // [rows, cols] float32 / float64, any strides (elements)
  const double* params;  // [6, cols] float64 contiguous: fill, lo, hi, shift, inv_scale, offset
  Mat out;               // [rows, cols] float32 / float64 / float16 / bfloat16, cs == 1, rs >= cols
                         // (a column slice of a wider matrix); may be x itself (same strides),
                         // otherwise must not overlap x (the Python op checks the overlap)
};

// The checks of every launcher (CPU and CUDA): dtypes, shapes, out's layout, null pointers.
inline TransformArgs make_transform_args(const Mat& x, const double* params, const Mat& out) {
  require_dtype(x.dtype, {DType::f32, DType::f64}, "x");
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require(out.rows == x.rows && out.cols == x.cols, "out must have the shape of x");
  const int64_t n = x.rows * x.cols;
  require(n == 0 || (out.cs == 1 && out.rs >= out.cols), "out must have unit column stride and row stride >= cols");
  require_nonnull(x.data, n, "x");
  require_nonnull(out.data, n, "out");
  require_nonnull(params, x.cols, "params");
  return TransformArgs{x, params, out};
}

// float64 shift = hi + lo with hi, lo of the compute type C: with float compute (v - hi) is
// exact for v near the shift and lo restores the digits one fp32 shift would lose (a mean of
// 2008.03 has an fp32 ulp of 1.2e-4). With C = double, lo is exactly 0.
template <typename C>
KF_HD void split_shift(double shift, C& hi, C& lo) {
  hi = static_cast<C>(shift);
  lo = static_cast<C>(shift - static_cast<double>(hi));
}

// A quiet NaN test (GCC treats v != v as a possibly trapping compare and will not if-convert it).
template <typename C>
KF_HD bool is_nan(C v) {
#if defined(__CUDA_ARCH__)
  return isnan(v);
#elif defined(__GNUC__)
  return __builtin_isnan(v);
#else
  return v != v;
#endif
}

// Impute then clip. Both comparisons are evaluated unconditionally (no nested ternary), so the
// CPU compilers if-convert and vectorise the selects; NaN compares false, so an unimputed NaN
// passes the clip, and lo wins when lo > hi, as in the reference.
template <typename C>
KF_HD C impute_clip(C v, C fill, C lo, C hi) {
  v = is_nan(v) ? fill : v;
  const bool below = v < lo, above = v > hi;
  v = above ? hi : v;
  return below ? lo : v;
}

// impute_clip for bounds with !(lo > hi) (either may be NaN or infinite): the clip written as
// x86's maxpd(lo, v) / minpd(hi, v), which return their second operand when either is NaN, so
// the CPU compilers emit one instruction each; NaN v passes through both, as in impute_clip.
template <typename C>
KF_HD C impute_clip_ordered(C v, C fill, C lo, C hi) {
  v = is_nan(v) ? fill : v;
  v = lo > v ? lo : v;
  return hi < v ? hi : v;
}

// y = (v - shift) * inv_scale + offset, each operation rounded on its own (no fused multiply-add:
// every backend then equals the float64 reference bit for bit in float64; the CPU files build
// with fp-contract=off for the same reason).
template <typename C>
KF_HD C scale_shift(C v, C shift_hi, C shift_lo, C inv, C off) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(C) == 8) return __dadd_rn(__dmul_rn(__dsub_rn(__dsub_rn(v, shift_hi), shift_lo), inv), off);
  else return __fadd_rn(__fmul_rn(__fsub_rn(__fsub_rn(v, shift_hi), shift_lo), inv), off);
#else
  return ((v - shift_hi) - shift_lo) * inv + off;
#endif
}

// The element formula of numeric_transform (and of the table's numeric columns without a
// nonlinear step): v = isnan(x) ? fill : x;  v = clip(v, lo, hi);  y = (v - shift) * inv + off.
template <typename C>
KF_HD C impute_clip_scale(C x, C fill, C lo, C hi, C shift_hi, C shift_lo, C inv, C off) {
  return scale_shift<C>(impute_clip<C>(x, fill, lo, hi), shift_hi, shift_lo, inv, off);
}

}  // namespace kf
