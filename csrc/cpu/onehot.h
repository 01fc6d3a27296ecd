#pragma once
#include <cstdint>
#include "common/array.h"

namespace kf::cpu {
// Code convention: code >= 0 category index, -1 missing, other negatives unknown; codes >= K_j
// are unknown too. Per column j the lookup table has K_j + 2 slots: codes 0..K_j-1, missing, unknown.
//   slot = (0 <= code < K_j) ? code : (code == -1 ? K_j : K_j + 1)

// Dense one-hot in one pass over the rows (each row is zeroed, then gets its ones while in L1).
// codes [rows, F] int32, any strides.
// feat  [4, F] int64 contiguous: out_offset, width, table_offset, K per column.
// table [table_size] int32: per slot the output column within the block, -1 all zeros, -2 error.
// slots [2, n_slots] int32 (unused here; the per-output-element device kernels need it).
// out [rows, W] float32/float64/float16/bfloat16, unit column stride, row stride out.rs.
// errors [F] int32: incremented per value whose table entry is -2 (or whose slot is out of range).
void one_hot(const Mat& codes, const int64_t* feat, const int32_t* table, int64_t table_size,
             const int32_t* slots, int64_t n_slots, const Mat& out, int32_t* errors);

// Ordinal: out[r, j] = table[table_offset_j + slot] (float64 table) cast to the output dtype.
// feat [3, F] int64: table_offset, K, error bits (1: the missing slot raises, 2: the unknown slot raises).
// out [rows, F] float32/float64/float16/bfloat16/int64, unit column stride; raising values write 0
// and count in errors [F].
void ordinal_encode(const Mat& codes, const int64_t* feat, const double* table, int64_t table_size,
                    const Mat& out, int32_t* errors);
}  // namespace kf::cpu
