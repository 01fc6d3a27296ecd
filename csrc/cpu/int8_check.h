// Argument checks of the int8 GEMM family, shared by the CPU launchers (int8_gemm.cpp,
// int8_weight_only.cpp) and the CUDA ones (kernels/cuda/int8_gemm.cu), so every backend rejects
// the same inputs with the same messages. Pointers may be host or device: only null is checked.
#pragma once
#include <string>

#include "common/array.h"
#include "cpu/int8_gemm.h"

namespace kf {

// x_q [M, K] int8 with unit column stride, K small enough for exact int32 sums.
inline void check_int8_xq(const Mat& xq) {
  require_dtype(xq.dtype, {DType::i8}, "x_q");
  require(xq.cs == 1 || xq.cols <= 1, "x_q must have unit column stride");
  require(xq.cols <= kInt8GemmMaxK, "K must be <= 131071 for exact int32 accumulation");
  require_nonnull(xq.data, xq.rows * xq.cols, "x_q");
}

// x [M, K] float32/float16/bfloat16 (any strides): the weight-only input.
inline void check_int8_xf(const Mat& x) {
  require_dtype(x.dtype, {DType::f32, DType::f16, DType::bf16}, "x");
  require_nonnull(x.data, x.rows * x.cols, "x");
}

// w_q [N, K] int8 with unit column stride, K matching x's.
inline void check_int8_wq(const Mat& x, const Mat& wq) {
  require_dtype(wq.dtype, {DType::i8}, "w_q");
  require(wq.cols == x.cols, "x and w_q must have the same number of columns K");
  require(wq.cs == 1 || wq.cols <= 1, "w_q must have unit column stride");
  require_nonnull(wq.data, wq.rows * wq.cols, "w_q");
}

// out [M, N] float32/float16/bfloat16 with unit column stride; the activation code; the scales.
inline void check_int8_out(const Mat& x, const Mat& wq, const Mat& y, int act) {
  require(act >= 0 && act <= 2, "activation code must be 0 (none), 1 (relu) or 2 (gelu)");
  require_dtype(y.dtype, {DType::f32, DType::f16, DType::bf16}, "out");
  require(y.rows == x.rows && y.cols == wq.rows, "out must have shape [M, N]");
  require(y.cs == 1 && y.rs >= y.cols, "out must have unit column stride");
  require_nonnull(y.data, y.rows * y.cols, "out");
}

// Every check of a W8A8 GEMM call: x_q [M, K], w_q [N, K], row_scale [M], col_scale [N], out [M, N].
inline void check_int8_gemm_args(const Mat& xq, const Mat& wq, const float* row_scale, const float* col_scale,
                                 int act, const Mat& y) {
  check_int8_xq(xq);
  check_int8_wq(xq, wq);
  check_int8_out(xq, wq, y, act);
  require_nonnull(row_scale, xq.rows, "row_scale");
  require_nonnull(col_scale, wq.rows, "col_scale");
}

// Every check of a weight-only GEMM call: x [M, K] float, w_q [N, K], w_scale [N], out [M, N].
inline void check_weight_only_args(const Mat& x, const Mat& wq, const float* w_scale, int act, const Mat& y) {
  check_int8_xf(x);
  check_int8_wq(x, wq);
  check_int8_out(x, wq, y, act);
  require_nonnull(w_scale, wq.rows, "w_scale");
}

}  // namespace kf
