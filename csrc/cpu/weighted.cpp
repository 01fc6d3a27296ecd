// Weighted column statistics on the CPU: OpenMP over row blocks. Each block is summarised with an
// exact weighted two-pass (weighted sum, then weighted squared deviations from the block mean)
// while it sits in cache, in float64, then merged with Chan's formula in float64 (cpu/moments.h).
// The block body is compiled once per level (avx512 / avx2 / portable, kf::cpu::isa()).
#include "cpu/weighted.h"

#include "common/cpu_isa.h"
#include "common/simd.h"
#include "common/weighted.h"
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

using Acc = Moments;  // per-thread partial statistics

struct Block {
  std::vector<double> w, s, nan, mn, mx, m2, corr;
  explicit Block(int64_t c) : w(c), s(c), nan(c), mn(c), mx(c), m2(c), corr(c) {}
};

// Rows r0..r1 of x (column stride cs; cs == 1 lets the inner loops vectorise across columns).
template <typename T>
KF_INLINE void block(const T* x, int64_t rs, int64_t cs, const double* wts, int64_t r0, int64_t r1, int64_t cols,
                     Acc& acc, Block& b) {
  std::fill(b.w.begin(), b.w.end(), 0.0);
  std::fill(b.s.begin(), b.s.end(), 0.0);
  std::fill(b.nan.begin(), b.nan.end(), 0.0);
  std::fill(b.m2.begin(), b.m2.end(), 0.0);
  std::fill(b.corr.begin(), b.corr.end(), 0.0);
  std::fill(b.mn.begin(), b.mn.end(), kInf);
  std::fill(b.mx.begin(), b.mx.end(), -kInf);
  double* __restrict W = b.w.data(); double* __restrict S = b.s.data(); double* __restrict NA = b.nan.data();
  double* __restrict LO = b.mn.data(); double* __restrict HI = b.mx.data(); double* __restrict Q = b.m2.data();
  double* __restrict CO = b.corr.data();
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict row = x + r * rs;
    const double wt = wts ? wts[r] : 1.0;
    const bool live = wt != 0.0;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) {
      const double v = static_cast<double>(row[j * cs]);
      const bool fin = (v - v) == 0.0 && live;  // finite and of nonzero weight
      W[j] += fin ? wt : 0.0;
      S[j] += fin ? wt * v : 0.0;
      NA[j] += (v != v) ? wt : 0.0;
      const double vlo = fin ? v : kInf, vhi = fin ? v : -kInf;
      LO[j] = vlo < LO[j] ? vlo : LO[j];
      HI[j] = vhi > HI[j] ? vhi : HI[j];
    }
  }
  // S now holds the block mean; a block whose values are all equal gets that value exactly, so
  // blocks of a constant column merge without the rounding of their sums (variance exactly 0)
  for (int64_t j = 0; j < cols; ++j) S[j] = W[j] != 0.0 ? (LO[j] == HI[j] ? LO[j] : S[j] / W[j]) : 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict row = x + r * rs;
    const double wt = wts ? wts[r] : 1.0;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) {
      const double v = static_cast<double>(row[j * cs]);
      const double d = ((v - v) == 0.0) ? v - S[j] : 0.0;
      Q[j] += wt * d * d;
      CO[j] += wt * d;
    }
  }
  // corrected two-pass (Chan, Golub & LeVeque; as scikit-learn): subtracting (sum w d)^2 / W
  // removes the rounding error of the block mean, so a constant column gets M2 exactly 0
  for (int64_t j = 0; j < cols; ++j) {
    const double m2 = W[j] != 0.0 ? Q[j] - CO[j] * CO[j] / W[j] : 0.0;
    acc.merge(j, W[j], NA[j], S[j], m2 > 0.0 ? m2 : 0.0, LO[j], HI[j]);
  }
}

// per-level entry points: the target attribute reaches everything `flatten` inlines here (the
// block template's `omp simd` loops vectorise at that level)
using BlockFn = void (*)(const void*, int64_t, int64_t, const double*, int64_t, int64_t, int64_t, Acc&, Block&);

template <typename T>
KF_INLINE void block_any(const void* x, int64_t rs, int64_t cs, const double* w, int64_t r0, int64_t r1, int64_t c, Acc& a, Block& b) {
  if (cs == 1) block<T>(static_cast<const T*>(x), rs, 1, w, r0, r1, c, a, b);
  else block<T>(static_cast<const T*>(x), rs, cs, w, r0, r1, c, a, b);
}
template <typename T> KF_FLATTEN void block_portable(const void* x, int64_t rs, int64_t cs, const double* w, int64_t r0, int64_t r1, int64_t c, Acc& a, Block& b) {
  block_any<T>(x, rs, cs, w, r0, r1, c, a, b);
}
#ifdef KF_HAVE_X86_TARGETS
template <typename T> KF_TARGET_AVX2 KF_FLATTEN void block_avx2(const void* x, int64_t rs, int64_t cs, const double* w, int64_t r0, int64_t r1, int64_t c, Acc& a, Block& b) {
  block_any<T>(x, rs, cs, w, r0, r1, c, a, b);
}
template <typename T> KF_TARGET_AVX512 KF_FLATTEN void block_avx512(const void* x, int64_t rs, int64_t cs, const double* w, int64_t r0, int64_t r1, int64_t c, Acc& a, Block& b) {
  block_any<T>(x, rs, cs, w, r0, r1, c, a, b);
}
#endif

template <typename T>
BlockFn pick() {
  return KF_ISA_PICK(&block_avx512<T>, &block_avx2<T>, &block_portable<T>);
}

template <typename T>
void run(const Mat& x, const double* w, double* out) {
  const int64_t rows = x.rows, cols = x.cols;
  const BlockFn fn = pick<T>();
  // a block's rows stay in L2 between the two passes (~256 KB), at least 16 rows
  const int64_t kBlock = std::max<int64_t>(16, std::min<int64_t>(4096, (256 * 1024) / std::max<int64_t>(1, cols * int64_t(sizeof(T)))));
  const int64_t nblocks = (rows + kBlock - 1) / kBlock;
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
    Block b(cols);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < nblocks; ++i) {
      const int64_t r0 = i * kBlock, r1 = std::min(rows, r0 + kBlock);
      fn(x.data, x.rs, x.cs, w, r0, r1, cols, partial[tid], b);
    }
  }
  Acc total(cols);
  for (const Acc& p : partial) total.merge(p);
  total.write(out);
}

}  // namespace

void weighted_column_stats(const Mat& x, const double* w, double* out) {
  check_weighted_stats_args(x, w, out);
  if (x.dtype == DType::f32) run<float>(x, w, out);
  else run<double>(x, w, out);
}

const char* weighted_cpu_path() { return isa_name(isa()); }

}  // namespace kf::cpu
