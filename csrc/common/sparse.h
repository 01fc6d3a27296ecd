// The sparse family's matrix view and argument checks, one place for every launcher.
#pragma once
#include <cstdint>

#include "common/array.h"

namespace kf {

// A compressed sparse matrix [rows, cols] as scipy stores it: CSR (csr = true: indptr [rows + 1]
// over rows, indices are column numbers) or CSC (indptr [cols + 1] over columns, indices are row
// numbers). indptr and indices share one integer dtype (int32 / int64); data is float32 / float64
// [nnz]. Entries not stored are zeros; stored entries may hold NaN (missing) or explicit zeros.
struct Compressed {
  const void* indptr;   // [major + 1]
  const void* indices;  // [nnz]
  const void* data;     // [nnz]
  DType index_dtype, data_dtype;
  int64_t rows, cols, nnz;
  bool csr;
};

inline void check_compressed(const Compressed& x) {
  require(x.rows >= 0 && x.cols >= 0 && x.nnz >= 0, "sparse matrix must have a non-negative shape");
  require_dtype(x.index_dtype, {DType::i32, DType::i64}, "indices");
  require_dtype(x.data_dtype, {DType::f32, DType::f64}, "data");
  require_nonnull(x.indptr, 1, "indptr");
  require_nonnull(x.indices, x.nnz, "indices");
  require_nonnull(x.data, x.nnz, "data");
}

inline void check_sparse_stats_args(const Compressed& x, const double* out) {
  check_compressed(x);
  require_nonnull(out, 6 * x.cols, "out");
}

inline void check_sparse_apply_args(const Compressed& x, const double* params, const void* out) {
  check_compressed(x);
  require_nonnull(params, 4 * x.cols, "params");
  require_nonnull(out, x.nnz, "out");
}

inline void check_sparse_quantiles_args(const Compressed& x, const double* q, int64_t nq, const double* out) {
  check_compressed(x);
  require(!x.csr, "sparse_column_quantiles needs a CSC matrix");
  require(nq >= 0, "q must be a vector");
  require_nonnull(q, nq, "q");
  for (int64_t t = 0; t < nq; ++t) require(q[t] >= 0.0 && q[t] <= 1.0, "q must lie in [0, 1]");
  require_nonnull(out, nq * x.cols, "out");
}

}  // namespace kf
