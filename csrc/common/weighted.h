// Argument checks of the weighted-statistics family (CPU kernel; the GPU runs the op's torch
// form), one place for every launcher.
#pragma once
#include "common/array.h"

namespace kf {

// x [rows, cols] float32/float64, any strides; w [rows] float64 or null (all 1); out [6, cols].
inline void check_weighted_stats_args(const Mat& x, const double* w, const double* out) {
  (void)w;  // null means weight 1; values are checked by the Python op (finite, non-negative)
  require_dtype(x.dtype, {DType::f32, DType::f64}, "x");
  require(x.rows >= 0 && x.cols >= 0, "x must have non-negative shape");
  require_nonnull(x.data, x.rows * x.cols, "x");
  require_nonnull(out, 6 * x.cols, "out");
}

}  // namespace kf
