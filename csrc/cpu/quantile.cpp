// Exact column quantiles on the CPU by selection, not sorting.
// Columns are processed in groups whose scratch copy fits a memory budget. Phase 1 (OpenMP over
// row blocks) transposes the group into a column-major scratch buffer, so a row-major x is read
// once, in order, instead of once per column. Phase 2 (OpenMP over columns) moves the column's
// non-NaN values (+-inf included) to the front and finds the needed order statistics with
// std::nth_element, ascending, each call on the part right of the previous one (the neighbour
// hi = lo + 1 is just the minimum of that part): O(n) expected per column, not a sort's O(n log n).
#include "cpu/quantile.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace kf::cpu {
namespace {

constexpr int64_t kScratchBytes = int64_t(256) << 20;  // per column group
constexpr int64_t kBlockRows = 1024;

template <typename T>
void run(const Mat& x, const double* q, int64_t nq, double* out) {
  const int64_t rows = x.rows, cols = x.cols;
  const T* data = static_cast<const T*>(x.data);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (rows == 0) {
    std::fill(out, out + nq * cols, nan);
    return;
  }
  const int64_t group = std::max<int64_t>(1, std::min<int64_t>(cols, kScratchBytes / (rows * int64_t(sizeof(T)))));
  // [group, rows] column-major copy; new T[] leaves it uninitialised (phase 1 writes every element)
  std::unique_ptr<T[]> scratch(new T[static_cast<size_t>(group * rows)]);
  for (int64_t c0 = 0; c0 < cols; c0 += group) {
    const int64_t gc = std::min(group, cols - c0);
    const int64_t nblocks = (rows + kBlockRows - 1) / kBlockRows;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t r0 = b * kBlockRows, r1 = std::min(rows, r0 + kBlockRows);
      if (x.cs == 1) {  // row-contiguous: walk each row's slice of the group
        for (int64_t r = r0; r < r1; ++r) {
          const T* row = data + r * x.rs + c0;
          for (int64_t j = 0; j < gc; ++j) scratch[j * rows + r] = row[j];
        }
      } else {
        for (int64_t j = 0; j < gc; ++j) {
          const T* col = data + (c0 + j) * x.cs;
          T* dst = scratch.get() + j * rows;
          for (int64_t r = r0; r < r1; ++r) dst[r] = col[r * x.rs];
        }
      }
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t j = 0; j < gc; ++j) {
      T* v = scratch.get() + j * rows;
      T* end = std::remove_if(v, v + rows, [](T a) { return a != a; });
      const int64_t n = end - v;
      double* o = out + c0 + j;
      if (n == 0) {
        for (int64_t i = 0; i < nq; ++i) o[i * cols] = nan;
        continue;
      }
      std::vector<int64_t> need;  // the order statistics every q reads, ascending, unique
      need.reserve(2 * nq);
      for (int64_t i = 0; i < nq; ++i) {
        const QuantileIndex qi = quantile_index(n, q[i]);
        need.push_back(qi.lo);
        need.push_back(qi.hi);
      }
      std::sort(need.begin(), need.end());
      need.erase(std::unique(need.begin(), need.end()), need.end());
      int64_t from = 0;
      for (int64_t k : need) {  // afterwards v[0..k) <= v[k] <= v(k..n)
        if (k == from && from > 0) std::iter_swap(v + k, std::min_element(v + k, end));  // hi = lo + 1: a scan
        else std::nth_element(v + from, v + k, end);
        from = k + 1;
      }
      for (int64_t i = 0; i < nq; ++i) {
        const QuantileIndex qi = quantile_index(n, q[i]);
        o[i * cols] = quantile_lerp(static_cast<double>(v[qi.lo]), static_cast<double>(v[qi.hi]), qi.gamma);
      }
    }
  }
}

}  // namespace

void column_quantiles(const Mat& x, const double* q, int64_t nq, double* out) {
  require_dtype(x.dtype, {DType::f32, DType::f64}, "x");
  require(x.rows >= 0 && x.cols >= 0, "x must have non-negative shape");
  require(nq >= 0, "q must have a non-negative length");
  require_nonnull(x.data, x.rows * x.cols, "x");
  require_nonnull(q, nq, "q");
  require_nonnull(out, nq * x.cols, "out");
  for (int64_t i = 0; i < nq; ++i)
    require(q[i] >= 0.0 && q[i] <= 1.0, "q values must lie in [0, 1]");
  if (nq == 0 || x.cols == 0) return;
  if (x.dtype == DType::f32) run<float>(x, q, nq, out);
  else run<double>(x, q, nq, out);
}

}  // namespace kf::cpu
