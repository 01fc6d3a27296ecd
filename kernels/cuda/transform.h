#pragma once
#include <cstdint>
#include "common/transform.h"

namespace kf::cuda {
// Device version of kf::cpu::numeric_transform (same formula, same parameter layout).
// x [rows, cols] float32/float64 (any strides); params [6, cols] float64 (device);
// out [rows, cols] float32/float64/float16/bfloat16, unit column stride, row stride out.rs.
void numeric_transform(const Mat& x, const double* params, const Mat& out, uintptr_t stream);
}  // namespace kf::cuda
