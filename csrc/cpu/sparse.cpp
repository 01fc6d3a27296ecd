// Column statistics, transform and quantiles of CSR / CSC matrices over the stored values plus
// the implicit zeros, without densifying. OpenMP over rows (CSR) or columns (CSC).
#include "cpu/sparse.h"

#include "common/omp.h"
#include "common/quantile.h"
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

constexpr double kInf = std::numeric_limits<double>::infinity();

// per-column running weighted statistics (float64, merged with Moments' Chan merge) and the
// stored-entry bookkeeping the implicit zeros are derived from
struct ColAcc : Moments {
  std::vector<double> wstored;  // weight of the stored entries of any value
  std::vector<int64_t> stored;  // stored entries of any value (for the implicit-zero count)
  explicit ColAcc(int64_t c) : Moments(c), wstored(c, 0.0), stored(c, 0) {}
};


// CSR: two passes over the stored values, each thread over a contiguous range of rows into its
// own per-column accumulators (one cache line per column, so a value touches one line): pass 1
// weight, sum, NaN weight, min, max; pass 2 the squared deviations from the column mean of the
// stored values with the corrected two-pass formula. Plain adds (no per-value division) and an
// exact result; the data is read twice, which the kernel's access pattern (indices scattered
// over the columns) hides behind the accumulator traffic.
struct alignas(64) P1 { double w = 0, s = 0, nan = 0, ws = 0, mn = kInf, mx = -kInf; int64_t stored = 0; };
struct alignas(16) P2 { double q = 0, c = 0; };

template <typename I, typename T>
void stats_csr(const Compressed& x, const double* wts, ColAcc& total) {
  const I* indptr = static_cast<const I*>(x.indptr);
  const I* indices = static_cast<const I*>(x.indices);
  const T* data = static_cast<const T*>(x.data);
  const int64_t cols = x.cols;
  const int nt = nthreads_for(x.nnz / 65536 + 1);
  std::vector<std::vector<P1>> p1(nt);
  std::vector<std::vector<P2>> p2(nt);
  std::vector<double> mean(cols, 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int tid = thread_id();
    std::vector<P1>& a = p1[tid];
    a.assign(cols, P1());
#pragma omp for schedule(static)
    for (int64_t r = 0; r < x.rows; ++r) {
      const double wt = wts ? wts[r] : 1.0;
      for (int64_t k = static_cast<int64_t>(indptr[r]); k < static_cast<int64_t>(indptr[r + 1]); ++k) {
        P1& e = a[static_cast<int64_t>(indices[k])];
        const double v = static_cast<double>(data[k]);
        e.stored += 1;
        e.ws += wt;
        const bool fin = (v - v) == 0.0 && wt != 0.0;
        e.nan += (v != v) ? wt : 0.0;
        e.w += fin ? wt : 0.0;
        e.s += fin ? wt * v : 0.0;
        e.mn = fin && v < e.mn ? v : e.mn;
        e.mx = fin && v > e.mx ? v : e.mx;
      }
    }
#pragma omp barrier
#pragma omp single
    {
      for (int64_t j = 0; j < cols; ++j) {
        double w = 0, sum = 0, mn = kInf, mx = -kInf;
        for (int t = 0; t < nt; ++t) {
          const P1& e = p1[t][j];
          w += e.w; sum += e.s; mn = std::min(mn, e.mn); mx = std::max(mx, e.mx);
          total.nan[j] += e.nan; total.wstored[j] += e.ws; total.stored[j] += e.stored;
        }
        total.mn[j] = mn; total.mx[j] = mx; total.w[j] = w;
        mean[j] = w != 0.0 ? (mn == mx ? mn : sum / w) : 0.0;  // all equal: exactly that value
      }
    }
    std::vector<P2>& b = p2[tid];
    b.assign(cols, P2());
#pragma omp for schedule(static)
    for (int64_t r = 0; r < x.rows; ++r) {
      const double wt = wts ? wts[r] : 1.0;
      for (int64_t k = static_cast<int64_t>(indptr[r]); k < static_cast<int64_t>(indptr[r + 1]); ++k) {
        const int64_t j = static_cast<int64_t>(indices[k]);
        const double d = static_cast<double>(data[k]) - mean[j];
        if ((d - d) == 0.0) { b[j].q += wt * d * d; b[j].c += wt * d; }  // finite values (weight 0 adds 0)
      }
    }
  }
  for (int64_t j = 0; j < cols; ++j) {
    double q = 0, c = 0;
    for (int t = 0; t < nt; ++t) { q += p2[t][j].q; c += p2[t][j].c; }
    const double w = total.w[j];
    total.mean[j] = mean[j];
    total.m2[j] = w != 0.0 ? std::max(0.0, q - c * c / w) : 0.0;
  }
}

// CSC: a column's stored values are contiguous; summarise each with an exact two-pass.
template <typename I, typename T>
void stats_csc(const Compressed& x, const double* wts, ColAcc& a) {
  const I* indptr = static_cast<const I*>(x.indptr);
  const I* indices = static_cast<const I*>(x.indices);
  const T* data = static_cast<const T*>(x.data);
  const int nt = nthreads_for(x.cols / 16 + 1);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16)
  for (int64_t j = 0; j < x.cols; ++j) {
    const int64_t k0 = static_cast<int64_t>(indptr[j]), k1 = static_cast<int64_t>(indptr[j + 1]);
    double sw = 0, s = 0, nan = 0, ws = 0, lo = kInf, hi = -kInf;
    for (int64_t k = k0; k < k1; ++k) {
      const double wt = wts ? wts[static_cast<int64_t>(indices[k])] : 1.0;
      const double v = static_cast<double>(data[k]);
      ws += wt;
      if (v != v) { nan += wt; continue; }
      if (!std::isfinite(v) || wt == 0.0) continue;
      sw += wt;
      s += wt * v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const double mean = sw != 0.0 ? (lo == hi ? lo : s / sw) : 0.0;  // all equal: exactly that value
    double q = 0, corr = 0;
    for (int64_t k = k0; k < k1; ++k) {
      const double wt = wts ? wts[static_cast<int64_t>(indices[k])] : 1.0;
      const double v = static_cast<double>(data[k]);
      if (std::isfinite(v) && wt != 0.0) { q += wt * (v - mean) * (v - mean); corr += wt * (v - mean); }
    }
    // corrected two-pass: removes the rounding error of the mean (a constant column gets M2 = 0)
    if (sw != 0.0) q = std::max(0.0, q - corr * corr / sw);
    a.w[j] = sw; a.mean[j] = sw != 0.0 ? mean : 0.0; a.m2[j] = q; a.nan[j] = nan;
    a.mn[j] = lo; a.mx[j] = hi; a.wstored[j] = ws; a.stored[j] = k1 - k0;
  }
}

template <typename I, typename T>
void stats_any(const Compressed& x, const double* w, double* out) {
  const int64_t cols = x.cols;
  ColAcc a(cols);
  if (x.csr) stats_csr<I, T>(x, w, a);
  else stats_csc<I, T>(x, w, a);
  double wtotal = 0;
  if (w) for (int64_t r = 0; r < x.rows; ++r) wtotal += w[r];
  else wtotal = static_cast<double>(x.rows);
  for (int64_t j = 0; j < cols; ++j) {
    const int64_t zeros = x.rows - a.stored[j];
    if (zeros > 0) {  // the implicit zeros: a summary of weight wz, mean 0, M2 0, min = max = 0
      const double wz = w ? wtotal - a.wstored[j] : static_cast<double>(zeros);
      a.merge(j, wz, 0.0, 0.0, 0.0, wz != 0.0 ? 0.0 : kInf, wz != 0.0 ? 0.0 : -kInf);
    }
  }
  a.write(out);
}

template <typename I, typename T>
void apply_any(const Compressed& x, const double* p, void* out_v) {
  const I* indptr = static_cast<const I*>(x.indptr);
  const I* indices = static_cast<const I*>(x.indices);
  const T* data = static_cast<const T*>(x.data);
  T* out = static_cast<T*>(out_v);
  const int64_t cols = x.cols, major = x.csr ? x.rows : x.cols;
  const double *fill = p, *lo = p + cols, *hi = p + 2 * cols, *scale = p + 3 * cols;
  const int nt = nthreads_for(x.nnz / 65536 + 1);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t m = 0; m < major; ++m) {
    for (int64_t k = static_cast<int64_t>(indptr[m]); k < static_cast<int64_t>(indptr[m + 1]); ++k) {
      const int64_t j = x.csr ? static_cast<int64_t>(indices[k]) : m;
      double v = static_cast<double>(data[k]);
      if (v != v) v = fill[j];
      v = v < lo[j] ? lo[j] : (v > hi[j] ? hi[j] : v);  // NaN compares false: kept
      out[k] = static_cast<T>(v * scale[j]);
    }
  }
}

template <typename I, typename T>
void quantiles_any(const Compressed& x, const double* q, int64_t nq, double* out) {
  const I* indptr = static_cast<const I*>(x.indptr);
  const T* data = static_cast<const T*>(x.data);
  const int64_t cols = x.cols;
  const int nt = nthreads_for(x.cols / 8 + 1);
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> s;
#pragma omp for schedule(dynamic, 8)
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t k0 = static_cast<int64_t>(indptr[j]), k1 = static_cast<int64_t>(indptr[j + 1]);
      s.clear();
      for (int64_t k = k0; k < k1; ++k) {
        const double v = static_cast<double>(data[k]);
        if (v == v) s.push_back(v);
      }
      std::sort(s.begin(), s.end());
      const int64_t zeros = x.rows - (k1 - k0), ns = static_cast<int64_t>(s.size()), n = ns + zeros;
      const int64_t neg = std::lower_bound(s.begin(), s.end(), 0.0) - s.begin();
      auto at = [&](int64_t i) { return i < neg ? s[i] : (i < neg + zeros ? 0.0 : s[i - zeros]); };
      for (int64_t t = 0; t < nq; ++t) {  // numpy's rule, as the dense kernels (common/quantile.h)
        if (n == 0) { out[t * cols + j] = std::numeric_limits<double>::quiet_NaN(); continue; }
        const QuantileIndex qi = quantile_index(n, q[t]);
        out[t * cols + j] = quantile_lerp(at(qi.lo), at(qi.hi), qi.gamma);
      }
    }
  }
}

template <template <typename, typename> class F, typename... A>
void dispatch(const Compressed& x, A... args) {
  if (x.index_dtype == DType::i32) {
    if (x.data_dtype == DType::f32) F<int32_t, float>::run(x, args...);
    else F<int32_t, double>::run(x, args...);
  } else {
    if (x.data_dtype == DType::f32) F<int64_t, float>::run(x, args...);
    else F<int64_t, double>::run(x, args...);
  }
}
template <typename I, typename T> struct StatsF { static void run(const Compressed& x, const double* w, double* o) { stats_any<I, T>(x, w, o); } };
template <typename I, typename T> struct ApplyF { static void run(const Compressed& x, const double* p, void* o) { apply_any<I, T>(x, p, o); } };
template <typename I, typename T> struct QuantF { static void run(const Compressed& x, const double* q, int64_t nq, double* o) { quantiles_any<I, T>(x, q, nq, o); } };

}  // namespace

void sparse_column_stats(const Compressed& x, const double* w, double* out) {
  check_sparse_stats_args(x, out);
  dispatch<StatsF>(x, w, out);
}

void sparse_column_apply(const Compressed& x, const double* params, void* out_data) {
  check_sparse_apply_args(x, params, out_data);
  dispatch<ApplyF>(x, params, out_data);
}

void sparse_column_quantiles(const Compressed& x, const double* q, int64_t nq, double* out) {
  check_sparse_quantiles_args(x, q, nq, out);
  dispatch<QuantF>(x, q, nq, out);
}

const char* sparse_cpu_path() { return "portable"; }

}  // namespace kf::cpu
