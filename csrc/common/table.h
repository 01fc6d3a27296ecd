// The fused whole-table transform family: its layout (TableSpec), the checks shared by the CPU
// and CUDA launchers, and the element maths of a numeric column (impute -> clip -> nonlinear ->
// scale; impute_clip / scale_shift from common/transform.h, the nonlinear step here).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "common/array.h"
#include "common/transform.h"

namespace kf {

// The table's layout (all arrays host or device pointers, contiguous):
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

// Rows of params beyond the transform's six.
enum TableParam : int { kFn = 6, kLambda = 7, kTableParams = 8 };

// Shape and dtype checks shared by the CPU and CUDA launchers: xnum [N, Fn] float32/float64 any
// strides, codes [N, Fc] int32 any strides, out [N, W] float32/float64/float16/bfloat16 with unit
// column stride. (The spec arrays are validated by kernelflow.ops.TableSpec.build; the CPU launcher
// also re-checks them on the host with check_table_spec_host, the device copy cannot be read here.)
inline void check_table_args(const Mat& xnum, const Mat& codes, const TableSpec& s, const Mat& out) {
  require_dtype(xnum.dtype, {DType::f32, DType::f64}, "xnum");
  require_dtype(codes.dtype, {DType::i32}, "codes");
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require(s.Fn >= 0 && s.Fi >= 0 && s.Fc >= 0 && s.W >= 0, "spec sizes must be non-negative");
  require(xnum.rows == out.rows && codes.rows == out.rows, "xnum, codes and out must have the same number of rows");
  require(xnum.cols == s.Fn && codes.cols == s.Fc && out.cols == s.W, "xnum / codes / out widths do not match the spec");
  require(out.cs == 1 && out.rs >= out.cols, "out must have unit column stride");
  const bool any = out.rows > 0;
  require_nonnull(xnum.data, any ? s.Fn : 0, "xnum");
  require_nonnull(codes.data, any ? s.Fc : 0, "codes");
  require_nonnull(out.data, any ? s.W : 0, "out");
  require_nonnull(s.params, s.Fn, "spec.params");
}

// Host-side spec checks (every write stays inside the output row).
inline void check_table_spec_host(const TableSpec& s) {
  for (int64_t j = 0; j < s.Fn; ++j) require(s.num_out[j] >= 0 && s.num_out[j] < s.W, "num_out out of range");
  for (int64_t i = 0; i < s.Fi; ++i)
    require(s.ind_out[i] >= 0 && s.ind_out[i] < s.W && s.ind_src[i] >= 0 && s.ind_src[i] < s.Fn,
            "indicator spec out of range");
  for (int64_t c = 0; c < s.Fc; ++c) {
    require(s.cat_k[c] >= 0 && s.cat_toff[c] >= 0, "categorical table offsets must be non-negative");
    require(s.cat_off[c] >= 0 && s.cat_off[c] + (s.cat_mode[c] == 1 ? 1 : s.cat_width[c]) <= s.W,
            "categorical block out of range");
  }
}

// The nonlinear step after the clip (scipy.stats.yeojohnson / scipy.special.boxcox with their eps
// rules); fn 0 = identity. C is the compute type (float64 on the CPU).
template <typename C>
KF_HD C table_nonlinear(C v, double fn, C lam) {
#if !defined(__CUDA_ARCH__)
  using std::expm1; using std::fabs; using std::log; using std::log1p; using std::sqrt;  // device: CUDA's overloads
#endif
  const C eps = C(2.220446049250313e-16);  // np.spacing(1.0)
  if (fn == 1.0) return log1p(v);
  if (fn == 2.0) return sqrt(v);
  if (fn == 3.0) {
    if (v >= C(0)) return fabs(lam) < eps ? log1p(v) : expm1(lam * log1p(v)) / lam;
    return fabs(lam - C(2)) > eps ? -expm1((C(2) - lam) * log1p(-v)) / (C(2) - lam) : -log1p(-v);
  }
  if (fn == 4.0) return lam == C(0) ? log(v) : expm1(lam * log(v)) / lam;
  return v;
}

}  // namespace kf
