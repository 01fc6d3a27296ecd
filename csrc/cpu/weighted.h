#pragma once
#include "common/array.h"

namespace kf::cpu {
// Weighted column statistics of x [rows, cols] (float32/float64, any strides) with sample
// weights w [rows] float64, in one pass. Writes out [6, cols] float64 with column_stats' layout:
// 0 sum of the weights of the finite values, 1 sum of the weights of the NaN values, 2 weighted
// mean, 3 weighted M2 (sum of w * (x - mean)^2), 4 min, 5 max (finite values of nonzero weight).
// Rows of weight 0 are as if absent; w == nullptr means weight 1 for every row (float64
// accumulation throughout). The blocks merge with Chan's formula in float64, so chunked and
// distributed fits merge exactly like the unweighted statistics.
void weighted_column_stats(const Mat& x, const double* w /* [rows] or null */, double* out /* [6, cols] */);

// The code path weighted_column_stats takes now: "avx512", "avx2" or "portable" (kf::cpu::isa()).
const char* weighted_cpu_path();
}  // namespace kf::cpu
