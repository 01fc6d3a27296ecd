#pragma once
#include "common/array.h"

namespace kf::cpu {
// Fused numeric transform, one pass: per column j
//   v = isnan(x) ? fill[j] : x;  v = min(max(v, lo[j]), hi[j]) (NaN kept);  y = (v - shift[j]) * inv_scale[j] + offset[j]
// x [rows, cols] float32/float64 any strides; out [rows, cols] float32/float64/float16/bfloat16 with
// column stride 1 and row stride out.rs (so it can write a slice of a wider matrix).
// params [6, cols] float64 contiguous: fill, lo, hi, shift, inv_scale, offset.
// Arithmetic in float64 when x or out is float64, else float32 with the shift split into two
// floats (hi + lo) so large shifts keep their digits.
void numeric_transform(const Mat& x, const double* params /* [6, cols] */, const Mat& out);
}  // namespace kf::cpu
