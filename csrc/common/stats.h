// Argument checks of the column-statistics family, shared by the CPU and CUDA launchers.
#pragma once
#include "common/array.h"

namespace kf {

// x [rows, cols] float32/float64, any strides; out [6, cols] float64 (count, NaN count, mean,
// M2, min, max).
inline void check_column_stats_args(const Mat& x, const double* out) {
  require_dtype(x.dtype, {DType::f32, DType::f64}, "x");
  require(x.rows >= 0 && x.cols >= 0, "x must have non-negative shape");
  require_nonnull(x.data, x.rows * x.cols, "x");
  require_nonnull(out, 6 * x.cols, "out");
}

}  // namespace kf
