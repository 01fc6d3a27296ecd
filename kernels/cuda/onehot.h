#pragma once
#include <cstdint>
#include "common/onehot.h"

namespace kf::cuda {
// Device versions of kf::cpu::one_hot / ordinal_encode (csrc/cpu/onehot.h: same arguments, all
// pointers on the device). The one-hot kernels work per output element: slots [2, n_slots] int32
// gives each output column's (input column, position within its block); slots past out.cols are
// check-only (zero-width columns that can raise). The layout is not re-validated here (it lives
// on the device; OneHotLayout validates it): out-of-range table slots count as errors and an
// entry >= width writes no 1, so a bad layout cannot write out of bounds.
void one_hot(const Mat& codes, const int64_t* feat, const int32_t* table, int64_t table_size,
             const int32_t* slots, int64_t n_slots, const Mat& out, int32_t* errors, uintptr_t stream);
void ordinal_encode(const Mat& codes, const int64_t* feat, const double* table, int64_t table_size,
                    const Mat& out, int32_t* errors, uintptr_t stream);
}  // namespace kf::cuda
