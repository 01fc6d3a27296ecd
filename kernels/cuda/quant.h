#pragma once
#include <cstdint>
#include "common/array.h"

namespace kf::cuda {
// Device versions of kf::cpu::quantize_rows / quantize_static / dequantize_rows (csrc/cpu/quant.h),
// same formulas bit for bit. All pointers are device pointers; scale for quantize_static is [1].
void quantize_rows(const Mat& x, const Mat& q, float* scale /* [M] */, uintptr_t stream);
void quantize_static(const Mat& x, const float* scale /* [1] */, const Mat& q, uintptr_t stream);
void dequantize_rows(const Mat& q, const float* scale /* [M] */, const Mat& out, uintptr_t stream);
}  // namespace kf::cuda
