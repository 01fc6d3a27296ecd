// Column statistics on the CPU at memory speed, float64 throughout.
// OpenMP over cache-sized row blocks (dynamic schedule, merged in block order: reproducible).
// Each block is summarised
// per column in ONE read, in float64 (float32 input is widened on load: in fp32, 1e20^2
// overflows, 3e38 + 3e38 is inf and squares of denormals flush to 0): finite count, NaN count,
// min, max and the shifted sums s1 = sum(v - c), s2 = sum((v - c)^2), with c the block's first
// value in that column (0 if not finite): a sample of the column, so typically within a few
// standard deviations of the mean, and fixed by the data alone (results do not depend on the
// thread schedule). Then
//   mean = c + s1 / n,  M2 = s2 - s1^2 / n,
// exact to float64 rounding as long as |mean - c| is a few standard deviations at most (s2 <=
// 16 M2: at most 4 bits of cancellation); otherwise, and for inf / overflow, M2 is recomputed
// by a second pass over the block while it is still in L2 (the exact two-pass). The blocks'
// summaries merge in block order into one Moments with Chan's formula, with means relative to a
// base value per column (its first finite value), so that a mean of 1e8 with a spread of 1e-2
// keeps the blocks' differences (M2 exact to float64 rounding).
//
// Code paths (kf::cpu::isa(), forced with KERNELFLOW_CPU_ISA / _C.set_cpu_isa): avx512 (8 float64
// lanes, mask registers), avx2 (4 lanes, blends; fast on AVX2-only AMD EPYC too), portable
// (scalar C++). The lane structs V512 / V256 / VScalar hold the per-element maths; one template
// body per layout uses them, instantiated inside a per-level entry point that carries the target
// attribute and `flatten` (so the lane functions inline there, under that level's ISA).
//
// Variants of the pass per strip of columns: `fast` (s1, s2, min, max) when the strip held only
// finite values in the previous block, checked afterwards by s1 and s2 being finite (one NaN or
// inf makes them non-finite); otherwise `nan_only` (NaN skipped by the compare and by min / max's
// NaN rule), and `acc` (finite and NaN counts, masked sums, min, max) when an infinity shows,
// each re-run from cache when the cheaper one's check fails. On the data each accepts they add
// the same values in the same order, so they give the same bits.
#include "cpu/stats.h"

#include "common/cpu_isa.h"
#include "common/stats.h"
#include "cpu/moments.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef KF_HAVE_X86_TARGETS
#include <immintrin.h>
#endif

#if defined(__GNUC__)
// GCC 12's intrinsic headers self-initialise an undefined operand (`__Y = __Y`) and warn when
// inlined; the vector returns of the per-level lane functions never cross an ABI boundary.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace kf::cpu {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- lanes: R holds N float64 accumulators ---------------------------------------------------
// acc:  careful update over the finite values: count, s1 += d, s2 += d^2 (d = v - c), NaN
//       count, min, max
// nan_only: the same assuming no value is +-inf (NaN skipped; NaN count = rows - count); a
//       +-inf shows as an infinite min / max or non-finite sums, and the strip re-runs with acc
// fast: the same assuming every value is finite (no counts)
// dev:  fallback second pass, q += (v - mean)^2 over the finite values
// N: lanes per register; K: registers per strip of columns (as many as the accumulators leave
// room for: 6 kinds x K + constants within 32 zmm / 16 ymm registers)
struct VScalar {
  using R = double;
  static constexpr int N = 1, K = 2;
  static R load(const float* p) { return static_cast<double>(*p); }
  static R load(const double* p) { return *p; }
  static R set1(double a) { return a; }
  static void store(double* p, R a) { *p = a; }
  static bool finite(double v) { return (v - v) == 0.0; }  // false for NaN and +-inf
  static void acc(R v, R c, R& n, R& s1, R& s2, R& na, R& lo, R& hi) {
    const bool f = finite(v);
    const double d = f ? v - c : 0.0;
    n += f ? 1.0 : 0.0;
    s1 += d;
    s2 += d * d;
    na += (v != v) ? 1.0 : 0.0;
    lo = (f && v < lo) ? v : lo;
    hi = (f && v > hi) ? v : hi;
  }
  static void nan_only(R v, R c, R& n, R& s1, R& s2, R& lo, R& hi) {
    const bool o = v == v;
    const double d = o ? v - c : 0.0;
    n += o ? 1.0 : 0.0;
    s1 += d;
    s2 += d * d;
    lo = v < lo ? v : lo;  // NaN compares false: skipped
    hi = v > hi ? v : hi;
  }
  static void fast(R v, R c, R& s1, R& s2, R& lo, R& hi) {
    const double d = v - c;
    s1 += d;
    s2 += d * d;
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  static void dev(R v, R m, R& q) {
    const double d = v - m;
    q += finite(v) ? d * d : 0.0;
  }
};

#ifdef KF_HAVE_X86_TARGETS
struct V512 {
  using R = __m512d;
  static constexpr int N = 8, K = 4;
  KF_TARGET_AVX512 static R load(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  KF_TARGET_AVX512 static R load(const double* p) { return _mm512_loadu_pd(p); }
  KF_TARGET_AVX512 static R set1(double a) { return _mm512_set1_pd(a); }
  KF_TARGET_AVX512 static void store(double* p, R a) { _mm512_storeu_pd(p, a); }
  // fpclass 0x99 = QNaN | +inf | -inf | SNaN
  KF_TARGET_AVX512 static __mmask8 finite(R v) { return static_cast<__mmask8>(~_mm512_fpclass_pd_mask(v, 0x99)); }
  KF_TARGET_AVX512 static void acc(R v, R c, R& n, R& s1, R& s2, R& na, R& lo, R& hi) {
    const R one = _mm512_set1_pd(1.0);
    const __mmask8 f = finite(v), u = _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
    const R d = _mm512_maskz_sub_pd(f, v, c);  // 0 where not finite
    n = _mm512_mask_add_pd(n, f, n, one);
    s1 = _mm512_add_pd(s1, d);
    s2 = _mm512_fmadd_pd(d, d, s2);
    na = _mm512_mask_add_pd(na, u, na, one);
    lo = _mm512_mask_min_pd(lo, f, lo, v);
    hi = _mm512_mask_max_pd(hi, f, hi, v);
  }
  KF_TARGET_AVX512 static void nan_only(R v, R c, R& n, R& s1, R& s2, R& lo, R& hi) {
    const __mmask8 o = _mm512_cmp_pd_mask(v, v, _CMP_ORD_Q);
    const R d = _mm512_maskz_sub_pd(o, v, c);
    n = _mm512_mask_add_pd(n, o, n, _mm512_set1_pd(1.0));
    s1 = _mm512_add_pd(s1, d);
    s2 = _mm512_fmadd_pd(d, d, s2);
    lo = _mm512_min_pd(v, lo);  // the second operand where v is NaN: NaN skipped
    hi = _mm512_max_pd(v, hi);
  }
  KF_TARGET_AVX512 static void fast(R v, R c, R& s1, R& s2, R& lo, R& hi) {
    const R d = _mm512_sub_pd(v, c);
    s1 = _mm512_add_pd(s1, d);
    s2 = _mm512_fmadd_pd(d, d, s2);
    lo = _mm512_min_pd(lo, v);
    hi = _mm512_max_pd(hi, v);
  }
  KF_TARGET_AVX512 static void dev(R v, R m, R& q) {
    const R d = _mm512_sub_pd(v, m);
    q = _mm512_mask3_fmadd_pd(d, d, q, finite(v));
  }
};

struct V256 {
  using R = __m256d;
  static constexpr int N = 4, K = 2;
  KF_TARGET_AVX2 static R load(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  KF_TARGET_AVX2 static R load(const double* p) { return _mm256_loadu_pd(p); }
  KF_TARGET_AVX2 static R set1(double a) { return _mm256_set1_pd(a); }
  KF_TARGET_AVX2 static void store(double* p, R a) { _mm256_storeu_pd(p, a); }
  // |v| < inf: false for NaN (ordered compare) and +-inf; all-ones lanes where finite
  KF_TARGET_AVX2 static R finite(R v) {
    return _mm256_cmp_pd(_mm256_andnot_pd(_mm256_set1_pd(-0.0), v), _mm256_set1_pd(kInf), _CMP_LT_OQ);
  }
  KF_TARGET_AVX2 static void acc(R v, R c, R& n, R& s1, R& s2, R& na, R& lo, R& hi) {
    const R one = _mm256_set1_pd(1.0);
    const R f = finite(v), u = _mm256_cmp_pd(v, v, _CMP_UNORD_Q);
    const R d = _mm256_and_pd(f, _mm256_sub_pd(v, c));
    n = _mm256_add_pd(n, _mm256_and_pd(f, one));
    s1 = _mm256_add_pd(s1, d);
    s2 = _mm256_fmadd_pd(d, d, s2);
    na = _mm256_add_pd(na, _mm256_and_pd(u, one));
    lo = _mm256_min_pd(lo, _mm256_blendv_pd(_mm256_set1_pd(kInf), v, f));
    hi = _mm256_max_pd(hi, _mm256_blendv_pd(_mm256_set1_pd(-kInf), v, f));
  }
  KF_TARGET_AVX2 static void nan_only(R v, R c, R& n, R& s1, R& s2, R& lo, R& hi) {
    const R o = _mm256_cmp_pd(v, v, _CMP_ORD_Q);
    const R d = _mm256_and_pd(o, _mm256_sub_pd(v, c));
    n = _mm256_add_pd(n, _mm256_and_pd(o, _mm256_set1_pd(1.0)));
    s1 = _mm256_add_pd(s1, d);
    s2 = _mm256_fmadd_pd(d, d, s2);
    lo = _mm256_min_pd(v, lo);  // the second operand where v is NaN: NaN skipped
    hi = _mm256_max_pd(v, hi);
  }
  KF_TARGET_AVX2 static void fast(R v, R c, R& s1, R& s2, R& lo, R& hi) {
    const R d = _mm256_sub_pd(v, c);
    s1 = _mm256_add_pd(s1, d);
    s2 = _mm256_fmadd_pd(d, d, s2);
    lo = _mm256_min_pd(lo, v);
    hi = _mm256_max_pd(hi, v);
  }
  KF_TARGET_AVX2 static void dev(R v, R m, R& q) {
    const R d = _mm256_and_pd(finite(v), _mm256_sub_pd(v, m));
    q = _mm256_fmadd_pd(d, d, q);
  }
};
#endif

// A block's summary of one column, ready for Chan's merge. rel: the mean relative to the
// column's base value (see run()), which the merges use: block means that differ by less than
// the ulp of the mean itself (1e8 + noise) keep their differences exactly enough.
struct Col {
  double n, na, mean, rel, m2, lo, hi;
};

// One column from its shifted sums (shift c, base k). False when M2 must come from the second pass.
inline bool finish(double n, double na, double s1, double s2, double lo, double hi, double c, double k, Col& o) {
  o = Col{n, na, 0.0, 0.0, 0.0, lo, hi};
  if (n == 0.0) return true;
  if (lo == hi) {  // all values equal: exactly that mean and M2 = 0 (constant columns)
    o.mean = lo;
    o.rel = lo - k;
    return true;
  }
  o.mean = c + s1 / n;
  o.rel = (c - k) + s1 / n;
  o.m2 = s2 - s1 * (s1 / n);
  return VScalar::finite(o.m2) && o.m2 >= 0.0 && s2 <= 16.0 * o.m2;
}

// The shift of a column in a block: its first value there when finite, else 0.
template <typename T>
inline double first_shift(const T* p) {
  const double v = static_cast<double>(*p);
  return VScalar::finite(v) ? v : 0.0;
}

// ---- row-major (cs == 1): K vectors of N columns, every row of the block --------------------
// x [n, K * N] with row stride rs, already offset to the strip's first column; sh [K * N] scratch
// for the shifts; base [K * N] the columns' base values; fills o [K * N]. Returns the variant the
// data needed (0 fast, 1 NaN-aware, 2 careful); the next block starts with it.
template <class V, int K, typename T>
inline uint8_t strip(const T* x, int64_t rs, int64_t n, uint8_t start, double* sh, const double* base, Col* o) {
  using R = typename V::R;
  constexpr int N = V::N, W = K * N;
  for (int i = 0; i < W; ++i)
    sh[i] = first_shift(x + i);
  R c[K], s1[K], s2[K], lo[K], hi[K], cn[K], na[K];
  for (int k = 0; k < K; ++k) c[k] = V::load(static_cast<const double*>(sh + k * N));
  double b1[W], b2[W], bl[W], bh[W], bn[W], bna[W];
  bool clean = false, inf = start >= 2;
  if (start == 0) {
    for (int k = 0; k < K; ++k) { s1[k] = V::set1(0.0); s2[k] = V::set1(0.0); lo[k] = V::set1(kInf); hi[k] = V::set1(-kInf); }
    for (int64_t r = 0; r < n; ++r) {
      const T* row = x + r * rs;
      for (int k = 0; k < K; ++k) V::fast(V::load(row + k * N), c[k], s1[k], s2[k], lo[k], hi[k]);
    }
    for (int k = 0; k < K; ++k) { V::store(b1 + k * N, s1[k]); V::store(b2 + k * N, s2[k]); }
    clean = true;
    for (int i = 0; i < W; ++i) clean = clean && VScalar::finite(b1[i]) && VScalar::finite(b2[i]);
  }
  if (clean) {
    for (int i = 0; i < W; ++i) { bn[i] = static_cast<double>(n); bna[i] = 0.0; }
  } else {  // NaN-aware first (missing values are common, infinities rare), then fully careful
    if (!inf) {
    for (int k = 0; k < K; ++k) {
      s1[k] = V::set1(0.0); s2[k] = V::set1(0.0); cn[k] = V::set1(0.0);
      lo[k] = V::set1(kInf); hi[k] = V::set1(-kInf);
    }
    for (int64_t r = 0; r < n; ++r) {
      const T* row = x + r * rs;
      for (int k = 0; k < K; ++k) V::nan_only(V::load(row + k * N), c[k], cn[k], s1[k], s2[k], lo[k], hi[k]);
    }
    for (int k = 0; k < K; ++k) {
      V::store(bn + k * N, cn[k]); V::store(b1 + k * N, s1[k]); V::store(b2 + k * N, s2[k]);
      V::store(bl + k * N, lo[k]); V::store(bh + k * N, hi[k]);
    }
    for (int i = 0; i < W; ++i) {
      inf = inf || bl[i] == -kInf || bh[i] == kInf || !VScalar::finite(b1[i]) || !VScalar::finite(b2[i]);
      bna[i] = static_cast<double>(n) - bn[i];
    }
    }
    if (inf) {  // over the finite values only
      for (int k = 0; k < K; ++k) {
        s1[k] = V::set1(0.0); s2[k] = V::set1(0.0); cn[k] = V::set1(0.0); na[k] = V::set1(0.0);
        lo[k] = V::set1(kInf); hi[k] = V::set1(-kInf);
      }
      for (int64_t r = 0; r < n; ++r) {
        const T* row = x + r * rs;
        for (int k = 0; k < K; ++k) V::acc(V::load(row + k * N), c[k], cn[k], s1[k], s2[k], na[k], lo[k], hi[k]);
      }
      for (int k = 0; k < K; ++k) { V::store(bn + k * N, cn[k]); V::store(bna + k * N, na[k]); }
    }
  }
  for (int k = 0; k < K; ++k) {
    V::store(b1 + k * N, s1[k]); V::store(b2 + k * N, s2[k]);
    V::store(bl + k * N, lo[k]); V::store(bh + k * N, hi[k]);
  }
  bool ok[W], all_ok = true;
  for (int i = 0; i < W; ++i) {
    ok[i] = finish(bn[i], bna[i], b1[i], b2[i], bl[i], bh[i], sh[i], base[i], o[i]);
    all_ok = all_ok && ok[i];
  }
  if (!all_ok) {  // the exact two-pass for this strip, from cache
    double bm[W];
    for (int i = 0; i < W; ++i) bm[i] = o[i].mean;
    R m[K], q[K];
    for (int k = 0; k < K; ++k) { m[k] = V::load(static_cast<const double*>(bm + k * N)); q[k] = V::set1(0.0); }
    for (int64_t r = 0; r < n; ++r) {
      const T* row = x + r * rs;
      for (int k = 0; k < K; ++k) V::dev(V::load(row + k * N), m[k], q[k]);
    }
    for (int k = 0; k < K; ++k) V::store(b1 + k * N, q[k]);
    for (int i = 0; i < W; ++i)
      if (!ok[i]) o[i].m2 = b1[i];
  }
  return clean ? 0 : (inf ? 2 : 1);
}

inline void put_cols(Col* res, int64_t j0, int w, const Col* o) { std::copy(o, o + w, res + j0); }

// Per-thread state carried from block to block, per column: whether its strip held a
// non-finite value last time (which variant to try first; both give the same bits), scratch for
// the shifts; and the columns' base values (shared).
struct Carry {
  uint8_t* dirty;      // [cols]: 0 finite, 1 NaN seen, 2 inf seen (the variant to start with)
  double* shift;       // [cols]
  const double* base;  // [cols]
};

// Rows [0, n) of x (already offset to the block's first row).
template <class V, typename T>
inline void block_rowmajor(const T* x, int64_t rs, int64_t n, int64_t cols, Carry st, Col* res) {
  constexpr int N = V::N, W = V::K * N;  // 32 columns (avx512), 8 (avx2)
  Col o[4 * N];  // strips of up to 4 registers below
  int64_t j = 0;
  for (; j + W <= cols; j += W) {
    st.dirty[j] = strip<V, V::K>(x + j, rs, n, st.dirty[j], st.shift + j, st.base + j, o);
    put_cols(res, j, W, o);
  }
  const int k = static_cast<int>((cols - j) / N);
  if (k > 0) {
    if (k == 3) st.dirty[j] = strip<V, 3>(x + j, rs, n, st.dirty[j], st.shift + j, st.base + j, o);
    else if (k == 2) st.dirty[j] = strip<V, 2>(x + j, rs, n, st.dirty[j], st.shift + j, st.base + j, o);
    else st.dirty[j] = strip<V, 1>(x + j, rs, n, st.dirty[j], st.shift + j, st.base + j, o);
    put_cols(res, j, k * N, o);
    j += k * N;
  }
  for (; j < cols; ++j) {  // fewer than N columns left: one scalar strip each (the rows are cached)
    st.dirty[j] = strip<VScalar, 1>(x + j, rs, n, st.dirty[j], st.shift + j, st.base + j, o);
    put_cols(res, j, 1, o);
  }
}

// ---- column-major (rs == 1): each column's block is contiguous, lanes run down the rows -------
template <class V, typename T>
inline bool run_contiguous(const T* p, int64_t n, bool try_fast, double& shift, double base, Col& o) {
  using R = typename V::R;
  constexpr int K = V::K, N = V::N, W = K * N;
  shift = first_shift(p);
  const int64_t nv = n / W * W;
  const R c = V::set1(shift);
  R s1[K], s2[K], lo[K], hi[K], cn[K], na[K];
  double b1[W], b2[W], bl[W], bh[W], bn[W], bna[W];
  // the scalar tail, then the totals
  double t1 = 0.0, t2 = 0.0, tl = kInf, th = -kInf, tn = 0.0, tna = 0.0;
  bool clean = false;
  if (try_fast) {
    for (int k = 0; k < K; ++k) { s1[k] = V::set1(0.0); s2[k] = V::set1(0.0); lo[k] = V::set1(kInf); hi[k] = V::set1(-kInf); }
    for (int64_t i = 0; i < nv; i += W)
      for (int k = 0; k < K; ++k) V::fast(V::load(p + i + k * N), c, s1[k], s2[k], lo[k], hi[k]);
    for (int64_t i = nv; i < n; ++i) VScalar::fast(VScalar::load(p + i), shift, t1, t2, tl, th);
    for (int k = 0; k < K; ++k) { V::store(b1 + k * N, s1[k]); V::store(b2 + k * N, s2[k]); }
    double a1 = t1, a2 = t2;
    for (int i = 0; i < W; ++i) { a1 += b1[i]; a2 += b2[i]; }
    clean = VScalar::finite(a1) && VScalar::finite(a2);
  }
  if (clean) {
    for (int i = 0; i < W; ++i) { bn[i] = 0.0; bna[i] = 0.0; }
    tn = static_cast<double>(n);
  } else {
    t1 = 0.0; t2 = 0.0; tl = kInf; th = -kInf;
    for (int k = 0; k < K; ++k) {
      s1[k] = V::set1(0.0); s2[k] = V::set1(0.0); cn[k] = V::set1(0.0); na[k] = V::set1(0.0);
      lo[k] = V::set1(kInf); hi[k] = V::set1(-kInf);
    }
    for (int64_t i = 0; i < nv; i += W)
      for (int k = 0; k < K; ++k) V::acc(V::load(p + i + k * N), c, cn[k], s1[k], s2[k], na[k], lo[k], hi[k]);
    for (int64_t i = nv; i < n; ++i) VScalar::acc(VScalar::load(p + i), shift, tn, t1, t2, tna, tl, th);
    for (int k = 0; k < K; ++k) { V::store(bn + k * N, cn[k]); V::store(bna + k * N, na[k]); }
  }
  for (int k = 0; k < K; ++k) {
    V::store(b1 + k * N, s1[k]); V::store(b2 + k * N, s2[k]);
    V::store(bl + k * N, lo[k]); V::store(bh + k * N, hi[k]);
  }
  for (int i = 0; i < W; ++i) {  // lanes hold disjoint rows with one shift: plain sums, min, max
    t1 += b1[i]; t2 += b2[i]; tn += bn[i]; tna += bna[i];
    tl = std::min(tl, bl[i]);
    th = std::max(th, bh[i]);
  }
  if (!finish(tn, tna, t1, t2, tl, th, shift, base, o)) {  // the exact two-pass, from cache
    const R m = V::set1(o.mean);
    R q[K];
    for (int k = 0; k < K; ++k) q[k] = V::set1(0.0);
    double qt = 0.0;
    for (int64_t i = 0; i < nv; i += W)
      for (int k = 0; k < K; ++k) V::dev(V::load(p + i + k * N), m, q[k]);
    for (int64_t i = nv; i < n; ++i) VScalar::dev(VScalar::load(p + i), o.mean, qt);
    for (int k = 0; k < K; ++k) V::store(b1 + k * N, q[k]);
    for (int i = 0; i < W; ++i) qt += b1[i];
    o.m2 = qt;
  }
  return !clean;
}

template <class V, typename T>
inline void block_colmajor(const T* x, int64_t cs, int64_t n, int64_t cols, Carry st, Col* res) {
  for (int64_t j = 0; j < cols; ++j) {
    Col o;
    st.dirty[j] = run_contiguous<V>(x + j * cs, n, st.dirty[j] == 0, st.shift[j], st.base[j], o);
    put_cols(res, j, 1, &o);
  }
}

// any other strides: scalar, one column at a time
template <typename T>
inline void block_strided(const T* x, int64_t rs, int64_t cs, int64_t n, int64_t cols, Carry st, Col* res) {
  for (int64_t j = 0; j < cols; ++j) {
    Col o;
    st.dirty[j] = strip<VScalar, 1>(x + j * cs, rs, n, st.dirty[j], st.shift + j, st.base + j, &o);
    put_cols(res, j, 1, &o);
  }
}

// One block of rows [r0, r0 + n) of x, every column, into acc.
template <class V, typename T>
inline void block(const Mat& x, int64_t r0, int64_t n, Carry st, Col* res) {
  const T* p = static_cast<const T*>(x.data) + r0 * x.rs;
  if (x.cs == 1) block_rowmajor<V>(p, x.rs, n, x.cols, st, res);
  else if (x.rs == 1) block_colmajor<V>(p, x.cs, n, x.cols, st, res);
  else block_strided(p, x.rs, x.cs, n, x.cols, st, res);
}

using BlockFn = void (*)(const Mat&, int64_t, int64_t, Carry, Col*);

// per-level entry points: the target attribute reaches everything `flatten` inlines here
template <typename T> KF_FLATTEN void block_portable(const Mat& x, int64_t r0, int64_t n, Carry d, Col* a) {
  block<VScalar, T>(x, r0, n, d, a);
}
#ifdef KF_HAVE_X86_TARGETS
template <typename T> KF_TARGET_AVX2 KF_FLATTEN void block_avx2(const Mat& x, int64_t r0, int64_t n, Carry d, Col* a) {
  block<V256, T>(x, r0, n, d, a);
}
template <typename T> KF_TARGET_AVX512 KF_FLATTEN void block_avx512(const Mat& x, int64_t r0, int64_t n, Carry d, Col* a) {
  block<V512, T>(x, r0, n, d, a);
}
#endif

template <typename T>
BlockFn pick() {
  return KF_ISA_PICK(&block_avx512<T>, &block_avx2<T>, &block_portable<T>);
}

// Rows per block: row-major blocks of ~256 KB stay in L2 for the fallback second pass;
// column-major blocks are per column, 8192 rows (32 KB of float32) stay in L1.
inline int64_t block_rows(const Mat& x, int64_t elem) {
  if (x.cs != 1 && x.rs == 1) return 8192;
  return std::max<int64_t>(16, std::min<int64_t>(8192, (256 * 1024) / std::max<int64_t>(1, x.cols * elem)));
}

template <typename T>
void run(const Mat& x, double* out) {
  const int64_t rows = x.rows, cols = x.cols;
  const BlockFn fn = pick<T>();
  const int64_t kBlock = block_rows(x, sizeof(T));
  const int64_t nblocks = (rows + kBlock - 1) / kBlock;
  int nthreads = 1;
#ifdef _OPENMP
  nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), nblocks)));
#endif
  // base [cols]: each column's first finite value among its first rows (else 0). Every merge
  // works on means relative to it; the result adds it back.
  std::vector<double> base(static_cast<size_t>(cols), 0.0);
  const T* data = static_cast<const T*>(x.data);
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t r = 0; r < std::min<int64_t>(rows, 64); ++r) {
      const double v = static_cast<double>(data[r * x.rs + j * x.cs]);
      if (VScalar::finite(v)) { base[j] = v; break; }
    }
  // Blocks go to threads dynamically (a thread slowed by other work does not hold the rest up)
  // and write their summaries [blocks, cols]; they merge in block order, so the result does not
  // depend on the schedule. Rounds of blocks bound that buffer to 16 MB.
  const int64_t round = std::max<int64_t>(1, std::min<int64_t>(nblocks, (int64_t(16) << 20) / std::max<int64_t>(1, cols * int64_t(sizeof(Col)))));
  std::vector<Col> res(static_cast<size_t>(round * cols));
  Moments total(cols);
  for (int64_t b0 = 0; b0 < nblocks; b0 += round) {
    const int64_t nb = std::min(round, nblocks - b0);
#pragma omp parallel num_threads(static_cast<int>(std::min<int64_t>(nthreads, nb)))
    {
      std::vector<uint8_t> dirty(static_cast<size_t>(cols), 0);
      std::vector<double> shift(static_cast<size_t>(cols), 0.0);
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = b0; b < b0 + nb; ++b) {
        const int64_t r0 = b * kBlock;
        fn(x, r0, std::min(rows, r0 + kBlock) - r0, Carry{dirty.data(), shift.data(), base.data()}, res.data() + (b - b0) * cols);
      }
    }
    for (int64_t b = 0; b < nb; ++b) {
      const Col* o = res.data() + b * cols;
      for (int64_t j = 0; j < cols; ++j) total.merge(j, o[j].n, o[j].na, o[j].rel, o[j].m2, o[j].lo, o[j].hi);
    }
  }
  for (int64_t j = 0; j < cols; ++j)
    if (total.w[j] > 0.0) total.mean[j] += base[j];
  total.write(out);
}

}  // namespace

void column_stats(const Mat& x, double* out) {
  check_column_stats_args(x, out);
  if (x.dtype == DType::f32) run<float>(x, out);
  else run<double>(x, out);
}

const char* column_stats_cpu_path() { return isa_name(isa()); }

}  // namespace kf::cpu
