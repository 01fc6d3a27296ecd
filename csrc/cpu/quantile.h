#pragma once
#include <cstdint>

#include "common/array.h"
#include "common/quantile.h"

namespace kf::cpu {
// Exact per-column quantiles of x [rows, cols] (float32/float64, any strides), NaN ignored,
// numpy.nanquantile(method="linear") semantics. q [nq] float64 in [0, 1]. Writes out [nq, cols]
// float64 (row i = quantile q[i]); a column with no non-NaN value gives NaN.
void column_quantiles(const Mat& x, const double* q /* [nq] */, int64_t nq, double* out /* [nq, cols] */);

// The code path column_quantiles takes now: "avx512", "avx2" or "portable" (kf::cpu::isa()).
const char* column_quantiles_cpu_path();
}  // namespace kf::cpu
