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
// Kinds of pass per strip of columns, one loop templated over the kind (pass_rows / pass_contig
// over V::step<P>): kFast (s1, s2, min, max) when the strip held only finite values in the
// previous block, checked afterwards by s1 and s2 being finite (one NaN or inf makes them
// non-finite); otherwise kNan (NaN skipped by the compare and by min / max's NaN rule), and kAcc
// (finite and NaN counts, masked sums, min, max) when an infinity shows, each re-run from cache
// when the cheaper one's check fails. On the data each accepts they add the same values in the
// same order, so they give the same bits.
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

// ---- lanes: R holds N float64 values ---------------------------------------------------------
// A strip of columns is summarised by one pass of kind P over its rows (see the file comment):
//   kFast: every value assumed finite: s1 += d, s2 += d^2 (d = v - c), min, max
//   kNan:  NaN skipped (by the ordered compare and by min / max's NaN rule), +-inf assumed absent
//          (an infinity shows as an infinite min / max or non-finite sums): count n
//   kAcc:  over the finite values only: count n, NaN count, masked sums, min, max
// The three are one loop (pass<P> below) over V::step<P>; on the data each accepts they add the
// same values in the same order, so they give the same bits. Cnt: the count registers (float64
// lanes, or int64 lanes where subtracting the all-ones compare mask counts in one instruction).
// dev: the fallback second pass, q += (v - mean)^2 over the finite values.
// N: lanes per register; K: registers per strip of columns (6 accumulators x K + the shifts
// within 32 zmm / 16 ymm registers).
enum Pass : int { kFast = 0, kNan = 1, kAcc = 2 };
constexpr int64_t kPrefetchRows = 32;

template <class V>
struct Acc {  // one register of each accumulator
  typename V::R s1, s2, lo, hi;
  typename V::Cnt n, na;
};

struct VScalar {
  using R = double;
  using Cnt = double;
  static constexpr int N = 1, K = 2;
  static R load(const float* p) { return static_cast<double>(*p); }
  static R load(const double* p) { return *p; }
  static R set1(double a) { return a; }
  static void store(double* p, R a) { *p = a; }
  static Cnt zero_count() { return 0.0; }
  static void store_counts(double* n, double* na, Cnt cn, Cnt cna) { *n = cn; *na = cna; }
  static bool finite(double v) { return (v - v) == 0.0; }  // false for NaN and +-inf
  template <int P>
  static void step(R v, R c, Acc<VScalar>& a) {
    if constexpr (P == kFast) {
      const double d = v - c;
      a.s1 += d;
      a.s2 += d * d;
      a.lo = v < a.lo ? v : a.lo;
      a.hi = v > a.hi ? v : a.hi;
    } else {
      const bool f = P == kNan ? v == v : finite(v);
      const double d = f ? v - c : 0.0;
      a.n += f ? 1.0 : 0.0;
      a.s1 += d;
      a.s2 += d * d;
      if constexpr (P == kAcc) a.na += (v != v) ? 1.0 : 0.0;
      a.lo = (f && v < a.lo) ? v : a.lo;  // NaN compares false: skipped
      a.hi = (f && v > a.hi) ? v : a.hi;
    }
  }
  static void dev(R v, R m, R& q) {
    const double d = v - m;
    q += finite(v) ? d * d : 0.0;
  }
};

#ifdef KF_HAVE_X86_TARGETS
struct V512 {
  using R = __m512d;
  using Cnt = __m512d;
  static constexpr int N = 8, K = 4;
  KF_TARGET_AVX512 static R load(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  KF_TARGET_AVX512 static R load(const double* p) { return _mm512_loadu_pd(p); }
  KF_TARGET_AVX512 static R set1(double a) { return _mm512_set1_pd(a); }
  KF_TARGET_AVX512 static void store(double* p, R a) { _mm512_storeu_pd(p, a); }
  KF_TARGET_AVX512 static Cnt zero_count() { return _mm512_setzero_pd(); }
  KF_TARGET_AVX512 static void store_counts(double* n, double* na, Cnt cn, Cnt cna) {
    _mm512_storeu_pd(n, cn);
    _mm512_storeu_pd(na, cna);
  }
  // fpclass 0x99 = QNaN | +inf | -inf | SNaN
  KF_TARGET_AVX512 static __mmask8 finite(R v) { return static_cast<__mmask8>(~_mm512_fpclass_pd_mask(v, 0x99)); }
  template <int P>
  KF_TARGET_AVX512 static void step(R v, R c, Acc<V512>& a) {
    if constexpr (P == kFast) {
      const R d = _mm512_sub_pd(v, c);
      a.s1 = _mm512_add_pd(a.s1, d);
      a.s2 = _mm512_fmadd_pd(d, d, a.s2);
      a.lo = _mm512_min_pd(a.lo, v);
      a.hi = _mm512_max_pd(a.hi, v);
    } else {
      const R one = _mm512_set1_pd(1.0);
      const __mmask8 f = P == kNan ? _mm512_cmp_pd_mask(v, v, _CMP_ORD_Q) : finite(v);
      const R d = _mm512_maskz_sub_pd(f, v, c);  // 0 where skipped
      a.n = _mm512_mask_add_pd(a.n, f, a.n, one);
      a.s1 = _mm512_add_pd(a.s1, d);
      a.s2 = _mm512_fmadd_pd(d, d, a.s2);
      if constexpr (P == kAcc) a.na = _mm512_mask_add_pd(a.na, _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q), a.na, one);
      a.lo = _mm512_mask_min_pd(a.lo, f, a.lo, v);
      a.hi = _mm512_mask_max_pd(a.hi, f, a.hi, v);
    }
  }
  KF_TARGET_AVX512 static void dev(R v, R m, R& q) {
    const R d = _mm512_sub_pd(v, m);
    q = _mm512_mask3_fmadd_pd(d, d, q, finite(v));
  }
};

// AVX2 has no mask registers and its blendv is 2-3 uops on Intel: the masks are compare results
// used through and / integer subtract, and the NaN rule of min / max does the skipping.
struct V256 {
  using R = __m256d;
  // int64 lanes: count -= mask (all ones = -1). kAcc keeps both counts in n: the NaN count in the
  // high 32 bits (a block has at most 8192 rows), so its 5 x K accumulators fit the 16 ymm registers
  // with the temporaries (two more would spill lo / hi, a store-forwarding round trip per row)
  using Cnt = __m256i;
  static constexpr int N = 4, K = 2;
  KF_TARGET_AVX2 static R load(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  KF_TARGET_AVX2 static R load(const double* p) { return _mm256_loadu_pd(p); }
  KF_TARGET_AVX2 static R set1(double a) { return _mm256_set1_pd(a); }
  KF_TARGET_AVX2 static void store(double* p, R a) { _mm256_storeu_pd(p, a); }
  KF_TARGET_AVX2 static Cnt zero_count() { return _mm256_setzero_si256(); }
  KF_TARGET_AVX2 static void store_counts(double* n, double* na, Cnt cn, Cnt) {
    alignas(32) uint64_t c[N];
    _mm256_store_si256(reinterpret_cast<__m256i*>(c), cn);
    for (int i = 0; i < N; ++i) {
      n[i] = static_cast<double>(c[i] & 0xffffffffu);
      na[i] = static_cast<double>(c[i] >> 32);
    }
  }
  KF_TARGET_AVX2 static Cnt count(Cnt n, R mask) { return _mm256_sub_epi64(n, _mm256_castpd_si256(mask)); }
  template <int P>
  KF_TARGET_AVX2 static void step(R v, R c, Acc<V256>& a) {
    if constexpr (P == kFast) {
      const R d = _mm256_sub_pd(v, c);
      a.s1 = _mm256_add_pd(a.s1, d);
      a.s2 = _mm256_fmadd_pd(d, d, a.s2);
      a.lo = _mm256_min_pd(a.lo, v);
      a.hi = _mm256_max_pd(a.hi, v);
    } else {
      // w: v where kept, NaN where skipped; v - v is +0 for finite v and NaN for NaN / +-inf, so
      // kAcc's w = v - (v - v) is v itself (signed zeros too) or NaN, with no constant and no blend
      const R w = P == kNan ? v : _mm256_sub_pd(v, _mm256_sub_pd(v, v));
      const R f = _mm256_cmp_pd(w, w, _CMP_ORD_Q);
      const R d = _mm256_and_pd(f, _mm256_sub_pd(v, c));
      a.n = count(a.n, f);
      a.s1 = _mm256_add_pd(a.s1, d);
      a.s2 = _mm256_fmadd_pd(d, d, a.s2);
      if constexpr (P == kAcc) a.n = _mm256_sub_epi64(a.n, _mm256_slli_epi64(_mm256_castpd_si256(_mm256_cmp_pd(v, v, _CMP_UNORD_Q)), 32));
      a.lo = _mm256_min_pd(w, a.lo);  // the second operand where w is NaN: skipped
      a.hi = _mm256_max_pd(w, a.hi);
    }
  }
  KF_TARGET_AVX2 static void dev(R v, R m, R& q) {
    const R t = _mm256_sub_pd(v, v);
    const R d = _mm256_and_pd(_mm256_cmp_pd(t, t, _CMP_ORD_Q), _mm256_sub_pd(v, m));
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

// The sums of one pass: [6][W] rows n, na, s1, s2, lo, hi. n, na are filled in by the caller for
// kFast (rows, 0) and na for kNan (rows - n).
enum SumRow : int { kN = 0, kNa = 1, kS1 = 2, kS2 = 3, kLo = 4, kHi = 5 };

template <class V, int K>
inline void acc_init(Acc<V> (&a)[K]) {
  for (int k = 0; k < K; ++k)
    a[k] = Acc<V>{V::set1(0.0), V::set1(0.0), V::set1(kInf), V::set1(-kInf), V::zero_count(), V::zero_count()};
}

template <class V, int K>
inline void acc_store(const Acc<V> (&a)[K], double (*b)[K * V::N]) {
  constexpr int N = V::N;
  for (int k = 0; k < K; ++k) {
    V::store_counts(b[kN] + k * N, b[kNa] + k * N, a[k].n, a[k].na);
    V::store(b[kS1] + k * N, a[k].s1); V::store(b[kS2] + k * N, a[k].s2);
    V::store(b[kLo] + k * N, a[k].lo); V::store(b[kHi] + k * N, a[k].hi);
  }
}

// Whether the sums of a pass of kind P stand (else the strip re-runs with the next kind):
// kFast: one NaN or inf makes s1 / s2 non-finite; kNan: an inf shows in min / max or the sums.
template <int P, int W>
inline bool pass_ok(const double (*b)[W], int64_t rows, double (*out)[W]) {
  bool ok = true;
  for (int i = 0; i < W; ++i) {
    const bool sums = VScalar::finite(b[kS1][i]) && VScalar::finite(b[kS2][i]);
    if constexpr (P == kFast) ok = ok && sums;
    else if constexpr (P == kNan) ok = ok && sums && b[kLo][i] != -kInf && b[kHi][i] != kInf;
  }
  if (!ok) return false;
  for (int r = 0; r < 6; ++r)
    for (int i = 0; i < W; ++i) out[r][i] = b[r][i];
  for (int i = 0; i < W; ++i) {
    if constexpr (P == kFast) { out[kN][i] = static_cast<double>(rows); out[kNa][i] = 0.0; }
    else if constexpr (P == kNan) out[kNa][i] = static_cast<double>(rows) - b[kN][i];
  }
  return true;
}

// ---- row-major (cs == 1): K vectors of N columns, every row of the block --------------------
// One pass of kind P over x [n, K * N] (row stride rs, already offset to the strip's first
// column) with the shifts c [K] -> b. pf_bytes: the span, from the strip's first column, whose
// lines are prefetched kPrefetchRows rows ahead (one line per 64 bytes of it).
template <int P, class V, int K, typename T>
inline void pass_rows(const T* x, int64_t rs, int64_t n, const typename V::R (&c)[K], double (*b)[K * V::N],
                      int64_t pf_bytes) {
  constexpr int N = V::N;
  Acc<V> a[K];
  acc_init(a);
  for (int64_t r = 0; r < n; ++r) {
    const T* row = x + r * rs;
    // a strip narrower than the row (AVX2: 8 columns) reads it with a stride the hardware
    // prefetchers follow late: fetch ahead (see block_rowmajor for how much)
    const char* ahead = reinterpret_cast<const char*>(row + kPrefetchRows * rs);
    for (int64_t off = 0; off < pf_bytes; off += 64) __builtin_prefetch(ahead + off, 0, 3);
    for (int k = 0; k < K; ++k) V::template step<P>(V::load(row + k * N), c[k], a[k]);
  }
  acc_store(a, b);
}

// sh [K * N] scratch for the shifts; base [K * N] the columns' base values; fills o [K * N].
// Starts with the pass kind `start` and returns the kind the data needed (the next block starts
// with it).
template <class V, int K, typename T>
inline uint8_t strip(const T* x, int64_t rs, int64_t n, uint8_t start, double* sh, const double* base, Col* o,
                     int64_t pf_bytes = 1) {
  using R = typename V::R;
  constexpr int N = V::N, W = K * N;
  for (int i = 0; i < W; ++i)
    sh[i] = first_shift(x + i);
  R c[K];
  for (int k = 0; k < K; ++k) c[k] = V::load(static_cast<const double*>(sh + k * N));
  double b[6][W], s[6][W];
  int p = start;
  for (;; ++p) {  // each cheaper pass's check failing re-runs the strip from cache with the next
    if (p == kFast) { pass_rows<kFast, V, K>(x, rs, n, c, b, pf_bytes); if (pass_ok<kFast, W>(b, n, s)) break; }
    else if (p == kNan) { pass_rows<kNan, V, K>(x, rs, n, c, b, pf_bytes); if (pass_ok<kNan, W>(b, n, s)) break; }
    else { pass_rows<kAcc, V, K>(x, rs, n, c, b, pf_bytes); pass_ok<kAcc, W>(b, n, s); break; }
  }
  bool ok[W], all_ok = true;
  for (int i = 0; i < W; ++i) {
    ok[i] = finish(s[kN][i], s[kNa][i], s[kS1][i], s[kS2][i], s[kLo][i], s[kHi][i], sh[i], base[i], o[i]);
    all_ok = all_ok && ok[i];
  }
  if (!all_ok) {  // the exact two-pass for this strip, from cache
    double bm[W], q2[W];
    for (int i = 0; i < W; ++i) bm[i] = o[i].mean;
    R m[K], q[K];
    for (int k = 0; k < K; ++k) { m[k] = V::load(static_cast<const double*>(bm + k * N)); q[k] = V::set1(0.0); }
    for (int64_t r = 0; r < n; ++r) {
      const T* row = x + r * rs;
      for (int k = 0; k < K; ++k) V::dev(V::load(row + k * N), m[k], q[k]);
    }
    for (int k = 0; k < K; ++k) V::store(q2 + k * N, q[k]);
    for (int i = 0; i < W; ++i)
      if (!ok[i]) o[i].m2 = q2[i];
  }
  return static_cast<uint8_t>(p);
}

inline void put_cols(Col* res, int64_t j0, int w, const Col* o) { std::copy(o, o + w, res + j0); }

// Per-thread state carried from block to block, per column: the pass kind its strip needed last
// time (which to try first; all give the same bits), scratch for the shifts; and the columns'
// base values (shared).
struct Carry {
  uint8_t* dirty;      // [cols]: kFast, kNan or kAcc
  double* shift;       // [cols]
  const double* base;  // [cols]
};

// Rows [0, n) of x (already offset to the block's first row). The first strip prefetches every
// line of the rows (the block is read from memory once, at the pace of one stream), the others
// only their own line (they find the rows in L2). Before, each strip fetched only its own line, so
// the strips of a row's later lines found them late. Measured at 4M x 32 float32, 2 threads, Intel
// Xeon: AVX2 53% -> 77% of copy bandwidth finite, 41% -> 58% with NaN + inf; AVX-512 81% -> 113%
// and 80% -> 100% (bytes read against a copy's read + write).
template <class V, typename T>
inline void block_rowmajor(const T* x, int64_t rs, int64_t n, int64_t cols, Carry st, Col* res) {
  constexpr int N = V::N, W = V::K * N;  // 32 columns (avx512), 8 (avx2)
  Col o[4 * N];  // strips of up to 4 registers below
  int64_t j = 0;
  for (; j + W <= cols; j += W) {
    // +63: the last line too when the row does not start on a line boundary
    const int64_t pf_bytes = j == 0 ? cols * static_cast<int64_t>(sizeof(T)) + 63 : 1;
    st.dirty[j] = strip<V, V::K>(x + j, rs, n, st.dirty[j], st.shift + j, st.base + j, o, pf_bytes);
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
// One pass of kind P over p [n] with one shift -> t [6] (the lanes and the scalar tail combined:
// disjoint rows with one shift, so plain sums, min, max).
template <int P, class V, typename T>
inline void pass_contig(const T* p, int64_t n, double shift, double* t) {
  constexpr int K = V::K, N = V::N, W = K * N;
  const int64_t nv = n / W * W;
  typename V::R c[K];
  for (int k = 0; k < K; ++k) c[k] = V::set1(shift);
  Acc<V> a[K];
  acc_init(a);
  for (int64_t i = 0; i < nv; i += W)
    for (int k = 0; k < K; ++k) V::template step<P>(V::load(p + i + k * N), c[k], a[k]);
  Acc<VScalar> s[1];
  acc_init(s);
  for (int64_t i = nv; i < n; ++i) VScalar::step<P>(VScalar::load(p + i), shift, s[0]);
  double b[6][W];
  acc_store(a, b);
  t[kN] = s[0].n; t[kNa] = s[0].na; t[kS1] = s[0].s1; t[kS2] = s[0].s2; t[kLo] = s[0].lo; t[kHi] = s[0].hi;
  for (int i = 0; i < W; ++i) {
    t[kN] += b[kN][i]; t[kNa] += b[kNa][i]; t[kS1] += b[kS1][i]; t[kS2] += b[kS2][i];
    t[kLo] = std::min(t[kLo], b[kLo][i]);
    t[kHi] = std::max(t[kHi], b[kHi][i]);
  }
}

template <class V, typename T>
inline uint8_t run_contiguous(const T* p, int64_t n, uint8_t start, double& shift, double base, Col& o) {
  using R = typename V::R;
  constexpr int K = V::K, N = V::N, W = K * N;
  shift = first_shift(p);
  double b[6][1], s[6][1];
  int k = start;
  for (;; ++k) {  // as in strip()
    if (k == kFast) { pass_contig<kFast, V>(p, n, shift, &b[0][0]); if (pass_ok<kFast, 1>(b, n, s)) break; }
    else if (k == kNan) { pass_contig<kNan, V>(p, n, shift, &b[0][0]); if (pass_ok<kNan, 1>(b, n, s)) break; }
    else { pass_contig<kAcc, V>(p, n, shift, &b[0][0]); pass_ok<kAcc, 1>(b, n, s); break; }
  }
  if (!finish(s[kN][0], s[kNa][0], s[kS1][0], s[kS2][0], s[kLo][0], s[kHi][0], shift, base, o)) {  // the exact two-pass
    const int64_t nv = n / W * W;
    const R m = V::set1(o.mean);
    R q[K];
    for (int j = 0; j < K; ++j) q[j] = V::set1(0.0);
    double qt = 0.0, q2[W];
    for (int64_t i = 0; i < nv; i += W)
      for (int j = 0; j < K; ++j) V::dev(V::load(p + i + j * N), m, q[j]);
    for (int64_t i = nv; i < n; ++i) VScalar::dev(VScalar::load(p + i), o.mean, qt);
    for (int j = 0; j < K; ++j) V::store(q2 + j * N, q[j]);
    for (int i = 0; i < W; ++i) qt += q2[i];
    o.m2 = qt;
  }
  return static_cast<uint8_t>(k);
}

template <class V, typename T>
inline void block_colmajor(const T* x, int64_t cs, int64_t n, int64_t cols, Carry st, Col* res) {
  for (int64_t j = 0; j < cols; ++j) {
    Col o;
    st.dirty[j] = run_contiguous<V>(x + j * cs, n, st.dirty[j], st.shift[j], st.base[j], o);
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
