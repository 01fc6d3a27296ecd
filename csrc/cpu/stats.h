#pragma once
#include "common/array.h"

namespace kf::cpu {
// One pass over x [rows, cols] (float32/float64, any strides). Writes out [6, cols] float64:
// row 0 count of finite values, 1 NaN count, 2 mean, 3 M2 (sum of squared deviations),
// 4 min, 5 max, all over finite values (+inf / -inf min / max when a column has none).
void column_stats(const Mat& x, double* out /* [6, cols] */);
}  // namespace kf::cpu
