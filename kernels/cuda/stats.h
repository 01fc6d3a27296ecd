#pragma once
#include <cstdint>
#include "common/array.h"

namespace kf::cuda {
// Device version of kf::cpu::column_stats. x [rows, cols] float32/float64 (device pointer, any
// strides); out [6, cols] float64 (device). workspace: device scratch of
// column_stats_workspace_bytes(rows, cols) bytes (caller-allocated so the caller's allocator and
// stream ordering apply).
int64_t column_stats_workspace_bytes(int64_t rows, int64_t cols);
void column_stats(const Mat& x, double* out, void* workspace, int64_t workspace_bytes, uintptr_t stream);
}  // namespace kf::cuda
