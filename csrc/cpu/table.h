#pragma once
#include <cstdint>

#include "common/array.h"

namespace kf {

// The fused whole-table transform's layout (all arrays host or device pointers, contiguous):
//   numeric column j (Fn):   params [8, Fn] float64 = fill, lo, hi, shift, inv_scale, offset, fn,
//                            lambda (fn, applied after the clip: 0 identity, 1 log1p, 2 sqrt,
//                            3 Yeo-Johnson(lambda), 4 Box-Cox(lambda); scipy's formulas);
//                            num_out [Fn] int64 = its output column
//   indicator i (Fi):        ind_src [Fi] int64 numeric column, ind_out [Fi] int64 output column
//   categorical c (Fc):      cat_off [Fc] int64 first output column, cat_width [Fc] int64,
//                            cat_mode [Fc] int64 (0 one-hot, 1 ordinal), cat_toff [Fc] int64 start
//                            of its code -> slot table in cat_tab [sum K] int64, cat_k [Fc] int64
//                            number of categories, cat_unk [Fc] int64 slot of unknown codes (-1:
//                            all zeros), cat_unk_value [Fc] float64 ordinal value of unknown codes
//   per output column w (W): col_kind [W] int32 (0 numeric, 1 indicator, 2 one-hot, 3 ordinal),
//                            col_src [W] int32 (numeric / indicator / categorical index),
//                            col_slot [W] int32 (one-hot slot) — used by the GPU kernels, which
//                            give each output element one thread.
struct TableSpec {
  int64_t Fn, Fi, Fc, W;
  const double* params;
  const int64_t* num_out;
  const int64_t* ind_src;
  const int64_t* ind_out;
  const int64_t* cat_off;
  const int64_t* cat_width;
  const int64_t* cat_mode;
  const int64_t* cat_toff;
  const int64_t* cat_tab;
  const int64_t* cat_k;
  const int64_t* cat_unk;
  const double* cat_unk_value;
  const int32_t* col_kind;
  const int32_t* col_src;
  const int32_t* col_slot;
};

// Shape and dtype checks shared by the CPU and CUDA launchers (the spec arrays themselves are
// validated by kernelflow.ops.TableSpec.build; the CPU launcher re-checks them on the host).
inline void check_table_args(const Mat& xnum, const Mat& codes, const TableSpec& s, const Mat& out) {
  require_dtype(xnum.dtype, {DType::f32, DType::f64}, "xnum");
  require_dtype(codes.dtype, {DType::i32}, "codes");
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require(xnum.rows == out.rows && codes.rows == out.rows, "xnum, codes and out must have the same number of rows");
  require(xnum.cols == s.Fn && codes.cols == s.Fc && out.cols == s.W, "xnum / codes / out widths do not match the spec");
  require(out.cs == 1 && out.rs >= out.cols, "out must have unit column stride");
}

namespace cpu {
// One pass over the rows: xnum [N, Fn] float32/float64 (any strides), codes [N, Fc] int32 (any
// strides; >= 0 category index, < 0 unknown), out [N, W] float32/float64/float16/bfloat16 (unit
// column stride). Every output element is written; numeric arithmetic in float64.
void table_transform(const Mat& xnum, const Mat& codes, const TableSpec& spec, const Mat& out);
}  // namespace cpu
}  // namespace kf
