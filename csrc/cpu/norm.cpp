// Fused LayerNorm / RMSNorm on the CPU, one source compiled per ISA level (cpu/vecf.h):
// OpenMP over rows, float32 rows used in place, 16-bit rows widened once into an fp32 scratch row
// (and the result narrowed back). Every row is read from memory once; its second and third sweeps
// hit L1/L2. The backward is one pass per row: dx, and dweight / dbias accumulated into the
// row block's own partial-sum row.
//
// Accumulation: row sums are fp32 vector partials over 256-value chunks, accumulated across
// chunks in fp64 (row_sum*), so the rounding error does not grow with the row length; the
// variance is the fp64 mean of squared deviations from the fp32 mean, corrected by their own
// mean. A row whose fp32 squares overflow (|x| > ~1e19) or may have underflowed (eps < 1e-30
// and variance < 1e-30) is recomputed in fp64 (row_moments_f64).
#include "cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
#endif

#include "common/cpu_isa.h"
#include "cpu/vecf.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // vectors by value between inlined helpers (cpu/vecf.h)

namespace kf::cpu {
namespace {
using vec::lanes;

constexpr int64_t kSumChunk = 256;           // values per fp32 partial sum (a multiple of 4 lanes)
constexpr int64_t kParallelMin = 1 << 15;    // elements below which one thread does it all
constexpr int64_t kMinSplits = 64;           // backward row ranges with their own partial sums, at least

using vec::ld;
using vec::st;
using vec::ST;

// Sum of f over a row of n values (f(tag, j, acc) adds values j.. to acc): fp32 within a chunk,
// fp64 across chunks.
template <class V, typename F>
KF_INLINE double row_sum1(int64_t n, F f) {
  constexpr int W = lanes<V>;
  using VT = vec::VT<V>;
  double total = 0.0;
  int64_t j = 0;
  for (; j + kSumChunk <= n; j += kSumChunk) {
    V a0{}, a1{}, a2{}, a3{};
    for (int64_t k = j; k < j + kSumChunk; k += 4 * W) {
      f(VT{}, k, a0);
      f(VT{}, k + W, a1);
      f(VT{}, k + 2 * W, a2);
      f(VT{}, k + 3 * W, a3);
    }
    total += static_cast<double>(vec::hsum((a0 + a1) + (a2 + a3)));
  }
  V a{};
  for (; j + W <= n; j += W) f(VT{}, j, a);
  float s = vec::hsum(a);
  for (; j < n; ++j) f(ST{}, j, s);
  return total + static_cast<double>(s);
}

// Two sums at once (f(tag, j, a, b)), same chunking.
template <class V, typename F>
KF_INLINE void row_sum2(int64_t n, F f, double& A, double& B) {
  constexpr int W = lanes<V>;
  using VT = vec::VT<V>;
  A = B = 0.0;
  int64_t j = 0;
  for (; j + kSumChunk <= n; j += kSumChunk) {
    V a0{}, b0{}, a1{}, b1{};
    for (int64_t k = j; k < j + kSumChunk; k += 2 * W) {
      f(VT{}, k, a0, b0);
      f(VT{}, k + W, a1, b1);
    }
    A += static_cast<double>(vec::hsum(a0 + a1));
    B += static_cast<double>(vec::hsum(b0 + b1));
  }
  V a{}, b{};
  for (; j + W <= n; j += W) f(VT{}, j, a, b);
  float sa = vec::hsum(a), sb = vec::hsum(b);
  for (; j < n; ++j) f(ST{}, j, sa, sb);
  A += static_cast<double>(sa);
  B += static_cast<double>(sb);
}

// Mean and variance of a row in fp64 throughout (the rare rows the fp32 sums cannot hold).
void row_moments_f64(const float* v /* [n] */, int64_t n, bool rms, double& mean, double& var) {
  double s = 0.0;
  if (!rms)
    for (int64_t j = 0; j < n; ++j) s += v[j];
  mean = s / static_cast<double>(n);
  double q = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    const double d = static_cast<double>(v[j]) - mean;
    q += d * d;
  }
  var = q / static_cast<double>(n);
}

// Kind: 0 float32, 2 float16 bits, 3 bfloat16 bits (the DType codes)
template <class L, int Kind>
KF_INLINE void widen(const void* base, int64_t r, int64_t n, float* out /* [n] */) {
  const uint16_t* p = static_cast<const uint16_t*>(base) + r * n;
  if constexpr (Kind == 2) L::widen_f16(p, n, out);
  else L::widen_bf16(p, n, out);
}
template <class L, int Kind>
KF_INLINE void narrow(const float* v /* [n] */, void* base, int64_t r, int64_t n) {
  uint16_t* p = static_cast<uint16_t*>(base) + r * n;
  if constexpr (Kind == 2) L::narrow_f16(v, n, p);
  else L::narrow_bf16(v, n, p);
}

struct FwdArgs {
  const void* x;       // [rows, n] contiguous
  void* y;             // [rows, n] contiguous, x's dtype
  const float* w;      // [n] (ones when absent)
  const float* b;      // [n] (zeros when absent)
  float* mean;         // [rows] or null
  float* rstd;         // [rows]
  int64_t rows, n;
  double eps;
  bool rms;
  DType dtype;
};

struct BwdArgs {
  const void* dy;      // [rows, n] contiguous
  const void* x;       // [rows, n] contiguous
  void* dx;            // [rows, n] contiguous
  const float* w;      // [n] (ones when absent)
  const float* mean;   // [rows] or null (RMSNorm)
  const float* rstd;   // [rows]
  float* dwp;          // [blocks, n] or null
  float* dbp;          // [blocks, n] or null
  float* spw;          // [blocks * sub, n] sub-range sums when sub > 1 (dwp non-null)
  float* spb;          // [blocks * sub, n] sub-range sums when sub > 1 (dbp non-null)
  int64_t rows, n, blocks, sub;
  bool rms;
  DType dtype;
};

// [lo, hi) of `total` items for the calling thread (static split, as schedule(static)).
KF_INLINE void my_range(int64_t total, int64_t& lo, int64_t& hi) {
#ifdef _OPENMP
  const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
#else
  const int64_t t = 0, T = 1;
#endif
  lo = total * t / T;
  hi = total * (t + 1) / T;
}

template <class L, int Kind>
KF_INLINE void fwd_thread(const FwdArgs& a) {
  using V = typename L::V;
  const int64_t n = a.n;
  std::vector<float> buf(Kind == 0 ? 0 : 2 * n);  // widened x row, fp32 y row
  const float* __restrict w = a.w;
  const float* __restrict b = a.b;
  int64_t r0, r1;
  my_range(a.rows, r0, r1);
  for (int64_t r = r0; r < r1; ++r) {
    const float* __restrict v;
    float* __restrict o;
    if constexpr (Kind == 0) {
      v = static_cast<const float*>(a.x) + r * n;
      o = static_cast<float*>(a.y) + r * n;
    } else {
      widen<L, Kind>(a.x, r, n, buf.data());
      v = buf.data();
      o = buf.data() + n;
    }
    float mu0 = 0.0f;
    if (!a.rms) mu0 = static_cast<float>(row_sum1<V>(n, [&](auto t, int64_t j, auto& acc) { acc += ld(t, v + j); }) /
                                     static_cast<double>(n));
    // deviations from the fp32 mean on a second (cached) read: no cancellation for large means
    double s1, s2;
    row_sum2<V>(n, [&](auto t, int64_t j, auto& p, auto& q) {
      const auto d = ld(t, v + j) - mu0;
      p += d;
      q += d * d;
    }, s1, s2);
    double mean, var;
    if (!std::isfinite(s2) || (a.eps < 1e-30 && s2 < 1e-30 * static_cast<double>(n))) {
      row_moments_f64(v, n, a.rms, mean, var);
    } else {
      const double m1 = a.rms ? 0.0 : s1 / static_cast<double>(n);
      var = std::max(s2 / static_cast<double>(n) - m1 * m1, 0.0);
      mean = static_cast<double>(mu0) + m1;
    }
    const float mu = static_cast<float>(mean);
    const float rs = static_cast<float>(1.0 / std::sqrt(var + a.eps));
    if (a.mean) a.mean[r] = mu;
    a.rstd[r] = rs;
    vec::for_each<V>(n, [&](auto t, int64_t j) { st(t, o + j, (ld(t, v + j) - mu) * rs * ld(t, w + j) + ld(t, b + j)); });
    if constexpr (Kind != 0) narrow<L, Kind>(o, a.y, r, n);
  }
}

// G: which partial sums this call forms (bit 0 dweight, bit 1 dbias). g [n] = dy * w as rounded
// by the first sweep, so that g - mean(g) is exact where it should be (a 1-wide row gives dx = 0:
// a product recomputed here could be contracted into an unrounded FMA).
template <class V, int G>
KF_INLINE void bwd_row(int64_t n, const float* __restrict xv, const float* __restrict d, const float* __restrict g,
                       float mu, float rs, float m1, float m2, float* __restrict o, float* __restrict dw,
                       float* __restrict db) {
  vec::for_each<V>(n, [&](auto t, int64_t j) {
    const auto dd = ld(t, d + j);
    const auto xh = (ld(t, xv + j) - mu) * rs;
    st(t, o + j, rs * (ld(t, g + j) - m1 - xh * m2));
    if constexpr ((G & 1) != 0) st(t, dw + j, ld(t, dw + j) + dd * xh);
    if constexpr ((G & 2) != 0) st(t, db + j, ld(t, db + j) + dd);
  });
}

template <class L, int Kind>
KF_INLINE void bwd_thread(const BwdArgs& a) {
  using V = typename L::V;
  const int64_t n = a.n, rows = a.rows;
  std::vector<float> buf((Kind == 0 ? 1 : 4) * n);  // g row; for 16-bit also widened x, dy and fp32 dx rows
  float* __restrict gbuf = buf.data() + (Kind == 0 ? 0 : 3 * n);
  const float* __restrict w = a.w;
  const float inv_n = 1.0f / static_cast<float>(n);
  // Rows are cut into nsub = blocks * sub contiguous sub-ranges, fixed by (rows, blocks) and not by
  // the thread count, so the partial sums are reproducible; with sub > 1 (few blocks, e.g. 1) the
  // sub-range sums go to a.spw / a.spb and are merged into range k's row, in order, below.
  const int64_t nsub = a.blocks > 0 ? a.blocks * a.sub : 1;
  const int G = a.blocks > 0 ? (a.dwp ? 1 : 0) | (a.dbp ? 2 : 0) : 0;
  int64_t q0 = 0, q1 = 1;
  if (a.blocks > 0) my_range(nsub, q0, q1);
  for (int64_t q = q0; q < q1; ++q) {
    int64_t r0 = rows * q / nsub, r1 = rows * (q + 1) / nsub;
    if (a.blocks == 0) my_range(rows, r0, r1);  // no partial sums: split rows by thread
    float* dw = (G & 1) ? (a.sub > 1 ? a.spw : a.dwp) + q * n : nullptr;
    float* db = (G & 2) ? (a.sub > 1 ? a.spb : a.dbp) + q * n : nullptr;
    if (dw) std::fill(dw, dw + n, 0.0f);  // overwritten: the caller need not zero its rows
    if (db) std::fill(db, db + n, 0.0f);
    for (int64_t r = r0; r < r1; ++r) {
      const float* __restrict xv;
      const float* __restrict d;
      float* __restrict o;
      if constexpr (Kind == 0) {
        xv = static_cast<const float*>(a.x) + r * n;
        d = static_cast<const float*>(a.dy) + r * n;
        o = static_cast<float*>(a.dx) + r * n;
      } else {
        widen<L, Kind>(a.x, r, n, buf.data());
        widen<L, Kind>(a.dy, r, n, buf.data() + n);
        xv = buf.data();
        d = buf.data() + n;
        o = buf.data() + 2 * n;
      }
      const float mu = (a.rms || !a.mean) ? 0.0f : a.mean[r], rs = a.rstd[r];
      double c1, c2;  // sums of g = dy * w and g * xhat
      row_sum2<V>(n, [&](auto t, int64_t j, auto& p, auto& q) {
        const auto g = ld(t, d + j) * ld(t, w + j);
        st(t, gbuf + j, g);
        p += g;
        q += g * ((ld(t, xv + j) - mu) * rs);
      }, c1, c2);
      const float m1 = a.rms ? 0.0f : static_cast<float>(c1) * inv_n;
      const float m2 = static_cast<float>(c2) * inv_n;
      switch (G) {
        case 0: bwd_row<V, 0>(n, xv, d, gbuf, mu, rs, m1, m2, o, dw, db); break;
        case 1: bwd_row<V, 1>(n, xv, d, gbuf, mu, rs, m1, m2, o, dw, db); break;
        case 2: bwd_row<V, 2>(n, xv, d, gbuf, mu, rs, m1, m2, o, dw, db); break;
        default: bwd_row<V, 3>(n, xv, d, gbuf, mu, rs, m1, m2, o, dw, db); break;
      }
      if constexpr (Kind != 0) narrow<L, Kind>(o, a.dx, r, n);
    }
  }
  if (G == 0 || a.sub == 1) return;
#pragma omp barrier
  // merge: row k = sum over s of sub-range k * sub + s, in order; each thread owns a column slice
  int64_t j0, j1;
  my_range(n, j0, j1);
  for (int which = 0; which < 2; ++which) {
    const float* part = which == 0 ? a.spw : a.spb;
    float* out = which == 0 ? a.dwp : a.dbp;
    if (!((G >> which) & 1)) continue;
    for (int64_t k = 0; k < a.blocks; ++k) {
      float* __restrict o = out + k * n;
      const float* __restrict p0 = part + k * a.sub * n;
      for (int64_t j = j0; j < j1; ++j) o[j] = p0[j];
      for (int64_t s = 1; s < a.sub; ++s) {
        const float* __restrict ps = p0 + s * n;
        for (int64_t j = j0; j < j1; ++j) o[j] += ps[j];
      }
    }
  }
}

template <class L>
KF_INLINE void fwd_any(const FwdArgs& a) {
  switch (a.dtype) {
    case DType::f32: return fwd_thread<L, 0>(a);
    case DType::f16: return fwd_thread<L, 2>(a);
    default: return fwd_thread<L, 3>(a);
  }
}
template <class L>
KF_INLINE void bwd_any(const BwdArgs& a) {
  switch (a.dtype) {
    case DType::f32: return bwd_thread<L, 0>(a);
    case DType::f16: return bwd_thread<L, 2>(a);
    default: return bwd_thread<L, 3>(a);
  }
}

// One entry point per level; the parallel region is written here so that its outlined body
// carries the level's target (cpu/vecf.h).
#define KF_NORM_LEVEL(LVL, TARGET, CLS)                                                    \
  TARGET void fwd_##LVL(const FwdArgs& a) {                                                \
    _Pragma("omp parallel if (a.rows * a.n >= kParallelMin)") fwd_any<vec::CLS>(a);      \
  }                                                                                        \
  TARGET void bwd_##LVL(const BwdArgs& a) {                                                \
    _Pragma("omp parallel if (a.rows * a.n >= kParallelMin)") bwd_any<vec::CLS>(a);      \
  }
KF_NORM_LEVEL(avx512, KF_TARGET_AVX512, Avx512)
KF_NORM_LEVEL(avx2, KF_TARGET_AVX2, Avx2)
KF_NORM_LEVEL(portable, , Portable)
#undef KF_NORM_LEVEL

// An output this large is a fresh mmap (glibc serves >= 32 MiB that way) that the kernel's first
// writes fault in 4 KiB at a time, which costs as much as the kernel itself. Asking for huge pages
// on the 2 MiB-aligned interior (advice only: contents and ownership are untouched, and a smaller,
// possibly heap, buffer is left alone) makes those faults 512x fewer.
void advise_huge_pages(void* p, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;
  if (bytes < (int64_t(32) << 20)) return;
  const uintptr_t a = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes)) & ~(kHuge - 1);
  if (e > a) madvise(reinterpret_cast<void*>(a), e - a, MADV_HUGEPAGE);  // failure is harmless
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace

const char* norm_cpu_path() { return isa_name(isa()); }

void norm_fwd(const Mat& x, const float* weight, const float* bias, double eps, bool rms, const Mat& y,
              float* mean, float* rstd) {
  check_norm_fwd_args(x, bias, eps, rms, y, mean, rstd);
  if (x.rows == 0 || x.cols == 0) return;
  const int64_t n = x.cols;
  // absent weight / bias become ones / zeros: the inner loops stay branch-free
  std::vector<float> ones, zeros;
  if (!weight) { ones.assign(n, 1.0f); weight = ones.data(); }
  if (!bias) { zeros.assign(n, 0.0f); bias = zeros.data(); }
  const FwdArgs a{x.data, y.data, weight, bias, mean, rstd, x.rows, n, eps, rms, x.dtype};
  advise_huge_pages(y.data, x.rows * n * (x.dtype == DType::f32 ? 4 : 2));
  KF_ISA_DISPATCH(fwd, a);
}

void norm_bwd(const Mat& dy, const Mat& x, const float* weight, const float* mean, const float* rstd, bool rms,
              const Mat& dx, float* dweight_partial, float* dbias_partial, int64_t blocks) {
  check_norm_bwd_args(dy, x, mean, rstd, rms, dx, blocks);
  if (x.rows == 0 || x.cols == 0) return;
  std::vector<float> ones;
  if (!weight) { ones.assign(x.cols, 1.0f); weight = ones.data(); }
  // at least kMinSplits sub-ranges in all, so that every thread has work even for blocks = 1
  const int64_t sub = blocks > 0 ? std::max<int64_t>(1, std::min((kMinSplits + blocks - 1) / blocks, x.rows / blocks)) : 1;
  // every sub-range overwrites its row: no initialisation
  std::unique_ptr<float[]> spw(sub > 1 && dweight_partial ? new float[blocks * sub * x.cols] : nullptr);
  std::unique_ptr<float[]> spb(sub > 1 && dbias_partial ? new float[blocks * sub * x.cols] : nullptr);
  const BwdArgs a{dy.data, x.data, dx.data, weight, mean, rstd, dweight_partial, dbias_partial, spw.get(), spb.get(),
                  x.rows, x.cols, blocks, sub, rms, x.dtype};
  advise_huge_pages(dx.data, x.rows * x.cols * (x.dtype == DType::f32 ? 4 : 2));
  KF_ISA_DISPATCH(bwd, a);
}

}  // namespace kf::cpu
