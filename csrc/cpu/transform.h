#pragma once
#include "common/transform.h"

namespace kf::cpu {
// Fused numeric transform, one pass (formula and argument rules: common/transform.h):
//   v = isnan(x) ? fill[j] : x;  v = clip(v, lo[j], hi[j]) (NaN kept);  y = (v - shift[j]) * inv_scale[j] + offset[j]
// x [rows, cols] float32/float64 any strides; out [rows, cols] float32/float64/float16/bfloat16 with
// column stride 1 and row stride out.rs (so it can write a slice of a wider matrix).
// params [6, cols] float64 contiguous: fill, lo, hi, shift, inv_scale, offset.
// Arithmetic in float64 for every input and output (float32 parameters would turn e.g.
// fill = 1e300, inv_scale = 1e-300 into inf * 0), rounded once to the output type at the store
// (float16 / bfloat16: through float32). out must not overlap x unless it is x itself with the same
// strides (checked by the caller).
// fresh: out was just allocated (its pages not yet touched): see numeric_transform in transform.cpp.
void numeric_transform(const Mat& x, const double* params /* [6, cols] */, const Mat& out, bool fresh = false);

// The code path numeric_transform takes now: the run-time ISA level ("avx512", "avx2", "portable").
const char* transform_cpu_path();
}  // namespace kf::cpu
