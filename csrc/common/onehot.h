// The one-hot / ordinal encoding family: its arguments, the checks shared by the CPU and CUDA
// launchers and the code -> slot rule, defined once here (csrc/cpu/onehot.cpp,
// kernels/cuda/onehot.cu).
#pragma once
#include <cstdint>
#include <string>

#include "common/array.h"
#include "common/transform.h"  // KF_HD

namespace kf {

// Code convention: code >= 0 category index, -1 missing, other negatives unknown; codes >= K_j
// are unknown too. Per column j the lookup table has K_j + 2 slots: codes 0..K_j-1, missing, unknown.
KF_HD int64_t code_slot(int32_t code, int64_t K) {
  return (code >= 0 && code < K) ? code : (code == -1 ? K : K + 1);
}

// Dense one-hot.
struct OneHotArgs {
  Mat codes;             // [rows, F] int32, any strides
  const int64_t* feat;   // [4, F] int64 contiguous: out_offset, width, table_offset, K per column
  const int32_t* table;  // [table_size]: per slot the output column within the block, -1 all zeros, -2 error
  int64_t table_size;
  const int32_t* slots;  // [2, n_slots] int32: per output column its input column and position in
  int64_t n_slots;       // its block (slots past W are check-only); read by the device kernels only
  Mat out;               // [rows, W] float32/float64/float16/bfloat16, unit column stride
  int32_t* errors;       // [F] int32: incremented per value whose table entry is -2
};

// Ordinal: out[r, j] = table[table_offset_j + slot] (float64 table) cast to the output dtype.
struct OrdinalArgs {
  Mat codes;             // [rows, F] int32, any strides
  const int64_t* feat;   // [3, F] int64: table_offset, K, error bits (1: missing raises, 2: unknown raises)
  const double* table;   // [table_size] float64
  int64_t table_size;
  Mat out;               // [rows, F] float32/float64/float16/bfloat16/int64, unit column stride
  int32_t* errors;       // [F] int32: raising values write 0 and count here
};

inline void check_encode_common(const Mat& codes, const Mat& out, const void* feat, const void* table,
                                int64_t table_size, const int32_t* errors) {
  require_dtype(codes.dtype, {DType::i32}, "codes");
  require(out.rows == codes.rows, "out must have as many rows as codes");
  require(out.cs == 1 || out.rows <= 1 || out.cols <= 1, "out must have unit column stride");
  require(table_size >= 0, "table_size must be non-negative");
  require_nonnull(codes.data, codes.rows * codes.cols, "codes");
  require_nonnull(out.data, out.rows * out.cols, "out");
  require_nonnull(feat, codes.cols, "feat");
  require_nonnull(table, table_size, "table");
  require_nonnull(errors, codes.cols, "errors");
}

// The checks of both launchers; the layout itself is validated on the host by
// check_one_hot_layout_host (the CPU launcher; the device kernels bound every access instead).
inline OneHotArgs make_one_hot_args(const Mat& codes, const int64_t* feat, const int32_t* table, int64_t table_size,
                                    const int32_t* slots, int64_t n_slots, const Mat& out, int32_t* errors) {
  check_encode_common(codes, out, feat, table, table_size, errors);
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require(n_slots >= 0, "n_slots must be non-negative");
  return OneHotArgs{codes, feat, table, table_size, slots, n_slots, out, errors};
}

inline OrdinalArgs make_ordinal_args(const Mat& codes, const int64_t* feat, const double* table, int64_t table_size,
                                     const Mat& out, int32_t* errors) {
  check_encode_common(codes, out, feat, table, table_size, errors);
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i64}, "out");
  require(out.cols == codes.cols, "out must have the shape of codes");
  return OrdinalArgs{codes, feat, table, table_size, out, errors};
}

// Layout checks in O(F + T) on host memory: a bad layout is an error, never an out-of-bounds write.
inline void check_one_hot_layout_host(const OneHotArgs& a) {
  const int64_t F = a.codes.cols;
  int64_t pos = 0;
  for (int64_t j = 0; j < F; ++j) {
    const int64_t off = a.feat[j], w = a.feat[F + j], toff = a.feat[2 * F + j], K = a.feat[3 * F + j];
    const std::string col = "column " + std::to_string(j);
    require(w >= 0 && K >= 0 && off == pos, "feat: " + col + " must start at the previous block's end with width >= 0");
    require(toff >= 0 && toff + K + 2 <= a.table_size, "feat: " + col + " table slots past the end of table");
    for (int64_t s = 0; s < K + 2; ++s)
      require(a.table[toff + s] >= -2 && a.table[toff + s] < w, "table: " + col + " entries must be in [-2, width)");
    pos += w;
  }
  require(pos == a.out.cols, "out must have as many columns as the layout's widths add up to");
}

inline void check_ordinal_layout_host(const OrdinalArgs& a) {
  const int64_t F = a.codes.cols;
  for (int64_t j = 0; j < F; ++j)
    require(a.feat[j] >= 0 && a.feat[F + j] >= 0 && a.feat[j] + a.feat[F + j] + 2 <= a.table_size,
            "feat: column " + std::to_string(j) + " table slots past the end of table");
}

}  // namespace kf
