#pragma once
#include <cstdint>

#include "common/onehot.h"

namespace kf::cpu {
// Arguments, their layout and the code convention: common/onehot.h (OneHotArgs, OrdinalArgs).

// Dense one-hot in one pass over the rows (each row is zeroed, then gets its ones while in L1).
// codes [rows, F] int32, any strides; feat [4, F] int64; table [table_size] int32;
// slots [2, n_slots] int32 (unused here; the per-output-element device kernels need it);
// out [rows, W] float32/float64/float16/bfloat16, unit column stride, row stride out.rs;
// errors [F] int32: incremented per value whose table entry is -2.
void one_hot(const Mat& codes, const int64_t* feat, const int32_t* table, int64_t table_size,
             const int32_t* slots, int64_t n_slots, const Mat& out, int32_t* errors);

// Ordinal: codes [rows, F] int32; feat [3, F] int64; table [table_size] float64;
// out [rows, F] float32/float64/float16/bfloat16/int64, unit column stride; errors [F] int32.
void ordinal_encode(const Mat& codes, const int64_t* feat, const double* table, int64_t table_size,
                    const Mat& out, int32_t* errors);

// The code path one_hot / ordinal_encode take now: the run-time ISA level ("avx512", "avx2", "portable").
const char* onehot_cpu_path();
}  // namespace kf::cpu
