#pragma once
#include <cstdint>
#include "common/array.h"

namespace kf {
// Symmetric int8 quantization, shared by every backend (see python/kernelflow/ops/quant.py):
//   absmax = max |x| over the row's values;  scale = absmax / 127;  inv = 127 / absmax (fp32)
//   q = clamp(round_half_even(x * inv), -127, 127)
// A row whose absmax is below kQuantMinAbsmax (all zeros included) gets scale = inv = 1 (so q = 0).
// A row holding NaN or +-inf gets scale = NaN and q = 0: everything computed from it is NaN.
constexpr float kQuantMinAbsmax = 1e-30f;
}  // namespace kf

namespace kf::cpu {
// The code path of the row loops: "avx512", "avx2" or "portable" (follows kf::cpu::isa()).
const char* quant_path();
// x [M, K] float32/float16/bfloat16 (any strides) -> q [M, K] int8 (row stride q.rs, unit column
// stride), scale [M] float32. Two vector passes per row (absmax, then rounding; the row is re-read
// from L1/L2).
void quantize_rows(const Mat& x, const Mat& q, float* scale /* [M] */);
// Static scale: q = clamp(round_half_even(x * (1 / scale)), -127, 127); NaN -> 0, +-inf -> +-127.
void quantize_static(const Mat& x, const float* scale /* [1] */, const Mat& q);
// out [M, K] = q [M, K] int8 * scale [M] (float32/float16/bfloat16/float64 out, unit column stride).
void dequantize_rows(const Mat& q, const float* scale /* [M] */, const Mat& out);
}  // namespace kf::cpu
