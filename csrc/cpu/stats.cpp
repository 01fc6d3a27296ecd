// Column statistics on the CPU: OpenMP over row blocks, vectorised across columns.
// Each block is summarised with an exact two-pass (sum, then squared deviations from the block
// mean) while it sits in cache, then merged with Chan's formula in float64: one read of memory,
// no catastrophic cancellation, and the same merge that combines chunked and distributed fits.
#include "cpu/stats.h"

#include "common/simd.h"
#include "cpu/moments.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace kf::cpu {
namespace {

// A block's rows stay in L2 between the two passes (~256 KB), 16 to 4096 rows.
inline int64_t block_rows(int64_t cols, int64_t elem) {
  return std::max<int64_t>(16, std::min<int64_t>(4096, (256 * 1024) / std::max<int64_t>(1, cols * elem)));
}

using Acc = Moments;  // per-thread partial statistics

// Row-contiguous layout (cs == 1): the inner loops run across columns and vectorise. Every sum
// is float64, float32 input included (converted on load): in fp32, 1e20^2 overflows, 3e38 + 3e38
// is inf and squares of denormals flush to 0; float64 holds all of them exactly enough. min / max
// are exact in either type.
struct Block {
  std::vector<double> cnt, sum, nan, mn, mx, m2;
  explicit Block(int64_t c) : cnt(c), sum(c), nan(c), mn(c), mx(c), m2(c) {}
};

// W columns at a time over every row of the block: the W-wide accumulators live in registers
// across the row loop (a loop over all columns per row would load and store them per element).
template <typename T, int W>
KF_INLINE void strip_pass1(const T* x, int64_t rs, int64_t r0, int64_t r1, int64_t j0, double* c, double* s,
                           double* na, double* lo, double* hi) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double ac[W], as[W], an[W], al[W], ah[W];
  for (int j = 0; j < W; ++j) { ac[j] = 0; as[j] = 0; an[j] = 0; al[j] = kInf; ah[j] = -kInf; }
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict row = x + r * rs + j0;
#pragma omp simd
    for (int j = 0; j < W; ++j) {
      const double v = static_cast<double>(row[j]);
      const bool fin = (v - v) == 0.0;  // false for NaN and +-inf; branch-free so it vectorises
      ac[j] += fin ? 1.0 : 0.0;
      as[j] += fin ? v : 0.0;
      an[j] += (v != v) ? 1.0 : 0.0;
      const double vlo = fin ? v : kInf, vhi = fin ? v : -kInf;
      al[j] = vlo < al[j] ? vlo : al[j];
      ah[j] = vhi > ah[j] ? vhi : ah[j];
    }
  }
  for (int j = 0; j < W; ++j) { c[j] = ac[j]; s[j] = as[j]; na[j] = an[j]; lo[j] = al[j]; hi[j] = ah[j]; }
}

template <typename T, int W>
KF_INLINE void strip_pass2(const T* x, int64_t rs, int64_t r0, int64_t r1, int64_t j0, const double* mean, double* q) {
  double aq[W], m[W];
  for (int j = 0; j < W; ++j) { aq[j] = 0; m[j] = mean[j]; }
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict row = x + r * rs + j0;
#pragma omp simd
    for (int j = 0; j < W; ++j) {
      const double v = static_cast<double>(row[j]);
      const double d = ((v - v) == 0.0) ? v - m[j] : 0.0;
      aq[j] += d * d;
    }
  }
  for (int j = 0; j < W; ++j) q[j] = aq[j];
}

template <typename T>
KF_INLINE void block_rowmajor(const T* x, int64_t rs, int64_t r0, int64_t r1, int64_t cols, Acc& acc, Block& b) {
  constexpr int W = 8;
  double* c = b.cnt.data(); double* s = b.sum.data(); double* na = b.nan.data();
  double* lo = b.mn.data(); double* hi = b.mx.data(); double* q = b.m2.data();
  int64_t j0 = 0;
  for (; j0 + W <= cols; j0 += W) strip_pass1<T, W>(x, rs, r0, r1, j0, c + j0, s + j0, na + j0, lo + j0, hi + j0);
  for (; j0 < cols; ++j0) strip_pass1<T, 1>(x, rs, r0, r1, j0, c + j0, s + j0, na + j0, lo + j0, hi + j0);
  for (int64_t j = 0; j < cols; ++j) s[j] = c[j] > 0 ? s[j] / c[j] : 0.0;  // s now holds the block mean
  // second pass over the cached block: squared deviations from the block mean
  j0 = 0;
  for (; j0 + W <= cols; j0 += W) strip_pass2<T, W>(x, rs, r0, r1, j0, s + j0, q + j0);
  for (; j0 < cols; ++j0) strip_pass2<T, 1>(x, rs, r0, r1, j0, s + j0, q + j0);
  for (int64_t j = 0; j < cols; ++j) acc.merge(j, c[j], na[j], s[j], q[j], lo[j], hi[j]);
}

// Any other layout: one column at a time down the rows (contiguous when rs == 1).
template <typename T>
KF_INLINE void block_colwise(const T* x, int64_t rs, int64_t cs, int64_t r0, int64_t r1, int64_t cols, Acc& acc) {
  for (int64_t j = 0; j < cols; ++j) {
    const T* __restrict col = x + j * cs;
    double c = 0, s = 0, na = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
#pragma omp simd reduction(+ : c, s, na) reduction(min : lo) reduction(max : hi)
    for (int64_t r = r0; r < r1; ++r) {
      const double v = static_cast<double>(col[r * rs]);
      const bool fin = (v - v) == 0.0;
      c += fin ? 1.0 : 0.0;
      s += fin ? v : 0.0;
      na += (v != v) ? 1.0 : 0.0;
      const double vlo = fin ? v : INFINITY, vhi = fin ? v : -INFINITY;
      lo = vlo < lo ? vlo : lo;
      hi = vhi > hi ? vhi : hi;
    }
    const double mean = c > 0 ? s / c : 0.0;
    double q = 0;
#pragma omp simd reduction(+ : q)
    for (int64_t r = r0; r < r1; ++r) {
      const double v = static_cast<double>(col[r * rs]);
      const double d = ((v - v) == 0.0) ? v - mean : 0.0;
      q += d * d;
    }
    acc.merge(j, c, na, mean, q, lo, hi);
  }
}

// Non-template leaves, cloned per ISA (the templates above are inlined into each clone).
KF_CLONES void block_rowmajor_f32(const float* x, int64_t rs, int64_t r0, int64_t r1, int64_t cols, Acc& acc, Block& b) {
  block_rowmajor<float>(x, rs, r0, r1, cols, acc, b);
}
KF_CLONES void block_rowmajor_f64(const double* x, int64_t rs, int64_t r0, int64_t r1, int64_t cols, Acc& acc, Block& b) {
  block_rowmajor<double>(x, rs, r0, r1, cols, acc, b);
}
KF_CLONES void block_colwise_f32(const float* x, int64_t rs, int64_t cs, int64_t r0, int64_t r1, int64_t cols, Acc& acc) {
  block_colwise<float>(x, rs, cs, r0, r1, cols, acc);
}
KF_CLONES void block_colwise_f64(const double* x, int64_t rs, int64_t cs, int64_t r0, int64_t r1, int64_t cols, Acc& acc) {
  block_colwise<double>(x, rs, cs, r0, r1, cols, acc);
}
inline void block_rowmajor_any(const float* x, int64_t rs, int64_t r0, int64_t r1, int64_t c, Acc& a, Block& b) { block_rowmajor_f32(x, rs, r0, r1, c, a, b); }
inline void block_rowmajor_any(const double* x, int64_t rs, int64_t r0, int64_t r1, int64_t c, Acc& a, Block& b) { block_rowmajor_f64(x, rs, r0, r1, c, a, b); }
inline void block_colwise_any(const float* x, int64_t rs, int64_t cs, int64_t r0, int64_t r1, int64_t c, Acc& a) { block_colwise_f32(x, rs, cs, r0, r1, c, a); }
inline void block_colwise_any(const double* x, int64_t rs, int64_t cs, int64_t r0, int64_t r1, int64_t c, Acc& a) { block_colwise_f64(x, rs, cs, r0, r1, c, a); }

template <typename T>
void run(const Mat& x, double* out) {
  const int64_t rows = x.rows, cols = x.cols;
  const T* data = static_cast<const T*>(x.data);
  const int64_t kBlockRows = block_rows(cols, sizeof(T));
  const int64_t nblocks = (rows + kBlockRows - 1) / kBlockRows;
  int nthreads = 1;
#ifdef _OPENMP
  nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), nblocks)));
#endif
  std::vector<Acc> partial(nthreads, Acc(cols));
#pragma omp parallel num_threads(nthreads)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    Acc& acc = partial[tid];
    Block blk(cols);
    // static schedule: each thread owns a contiguous range of blocks, so results are reproducible
#pragma omp for schedule(static)
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t r0 = b * kBlockRows, r1 = std::min(rows, r0 + kBlockRows);
      if (x.cs == 1) block_rowmajor_any(data, x.rs, r0, r1, cols, acc, blk);
      else block_colwise_any(data, x.rs, x.cs, r0, r1, cols, acc);
    }
  }
  Acc total(cols);
  for (const Acc& p : partial) total.merge(p);
  total.write(out);
}

}  // namespace

void column_stats(const Mat& x, double* out) {
  require_dtype(x.dtype, {DType::f32, DType::f64}, "x");
  require(x.rows >= 0 && x.cols >= 0, "x must have non-negative shape");
  require_nonnull(x.data, x.rows * x.cols, "x");
  require_nonnull(out, x.cols, "out");
  if (x.dtype == DType::f32) run<float>(x, out);
  else run<double>(x, out);
}

}  // namespace kf::cpu
