#pragma once
#include "common/array.h"
#include "common/sparse.h"

namespace kf::cpu {
using ::kf::Compressed;  // common/sparse.h

// The stored values only; the implicit zeros of each column join analytically.
// w: [rows] float64 sample weights or nullptr (all 1). Writes out [6, cols] float64 with the
// layout of column_stats: 0 weight of the finite values (count when unweighted, implicit zeros
// included), 1 weight of the NaN values, 2 weighted mean, 3 weighted M2, 4 min, 5 max (over the
// finite values of nonzero weight, zeros included; +inf / -inf when there are none). float64
// accumulation: a corrected two-pass over the stored values (CSR: two sweeps over the rows; CSC:
// each column while it is in cache), Chan's merge with the implicit zeros.
void sparse_column_stats(const Compressed& x, const double* w /* [rows] or null */, double* out /* [6, cols] */);

// out_data[k] = clip(isnan(v) ? fill[j] : v, lo[j], hi[j]) * scale[j] for every stored value v
// of column j (NaN stays NaN where fill[j] is NaN). params [4, cols] float64 rows: fill, lo, hi,
// scale. out_data [nnz] has data's dtype and may be data itself (in place). Implicit zeros stay
// zero, so this is the sparse form of the fused transform without a shift.
void sparse_column_apply(const Compressed& x, const double* params /* [4, cols] */, void* out_data /* [nnz] */);

// NaN-aware quantiles of each column of a CSC matrix, implicit zeros included (numpy's "linear"
// rule, as np.nanpercentile of the densified column). q [nq] in [0, 1]; out [nq, cols] float64,
// NaN for a column with no value. Each column's non-NaN stored values are sorted; the zeros are
// placed between the negative and the non-negative values without being materialised.
void sparse_column_quantiles(const Compressed& x, const double* q /* [nq] */, int64_t nq, double* out /* [nq, cols] */);

// The code path of the sparse kernels: "portable" at every level (scalar scatter / gather over
// the stored values, bound by their irregular access rather than by arithmetic).
const char* sparse_cpu_path();
}  // namespace kf::cpu
