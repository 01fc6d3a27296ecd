#pragma once
#include <cstdint>
#include "common/array.h"

namespace kf::cuda {
// Device version of kf::cpu::column_quantiles. x [rows, cols] float32/float64 (device pointer,
// any strides); q [nq] float64 (device) in [0, 1]; out [nq, cols] float64 (device). workspace:
// device scratch of column_quantiles_workspace_bytes(rows, cols, nq) bytes, caller-allocated.
// Asynchronous on `stream`; q is not range-checked on the device (the Python wrapper checks it).
int64_t column_quantiles_workspace_bytes(int64_t rows, int64_t cols, int64_t nq);
void column_quantiles(const Mat& x, const double* q, int64_t nq, double* out, void* workspace,
                      int64_t workspace_bytes, uintptr_t stream);
}  // namespace kf::cuda
