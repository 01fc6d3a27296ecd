#pragma once
#include "common/array.h"

namespace kf::cpu {
// One read of x [rows, cols] (float32/float64, any strides), float64 accumulation. Writes
// out [6, cols] float64: row 0 count of finite values, 1 NaN count, 2 mean, 3 M2 (sum of squared
// deviations), 4 min, 5 max, all over finite values (+inf / -inf min / max when a column has none).
void column_stats(const Mat& x, double* out /* [6, cols] */);

// The code path column_stats takes now: "avx512", "avx2" or "portable" (kf::cpu::isa()).
const char* column_stats_cpu_path();
}  // namespace kf::cpu
