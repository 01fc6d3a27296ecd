// Fused impute -> clip -> scale on the CPU, streamed at memory speed: the element formula is
// common/transform.h's (impute_clip / impute_clip_ordered, scale_shift: shared with CUDA and the
// table kernels), computed in float64 on 16 elements at a time (vectorised by the compiler at the
// run-time ISA level: 2 x 8 doubles on AVX-512, 4 x 4 on AVX2, 8 x 2 on SSE2), with the per-column
// parameters laid out per block so a block reads them as one contiguous run from L1/L2. A contiguous x and out are one flat stream
// split between the threads; outputs past the cache size go out with non-temporal
// stores (common/stream_store.h).
#include "cpu/transform.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/cpu_isa.h"
#include "common/half.h"
#include "common/simd.h"
#include "common/stream_store.h"
#include "common/transform.h"

// Separate roundings for (v - shift) * inv + offset: every ISA level then equals the float64
// reference bit for bit (a contracted FMA would differ from it in the last float64 bit).
#pragma GCC optimize("fp-contract=off")

namespace kf::cpu {
namespace {

constexpr int kBlock = 16;  // elements per vector block: one 64-byte line of float32 output
constexpr int kPrefetch = 1024;  // elements ahead of the block that the input is prefetched

// OutKind: 0 float32, 1 float64, 2 float16 bits, 3 bfloat16 bits
template <int K> struct OutT { using type = uint16_t; };
template <> struct OutT<0> { using type = float; };
template <> struct OutT<1> { using type = double; };

// bfloat16 rounding (nearest even, quiet NaN) without branches, so the block loop vectorises;
// equals kf::float_to_bf16_bits.
KF_INLINE uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>(nan ? ((u >> 16) | 0x40u) : r);
}

// The parameters of every 16-element block, laid out in the order the blocks read them:
// q[b][k][i] = params[k][(16 b + i) mod cols] ([nb, 6, 16] float64), so a block reads 96
// consecutive doubles from L1/L2 and the pointer just advances. A contiguous x and out are one flat
// stream whose column pattern repeats every nb = lcm(16, cols) / 16 blocks (the table holds one
// period); otherwise each row starts at column 0 and the table holds its cols / 16 whole blocks.
struct Plan {
  const double* p = nullptr;  // [6, cols] float64: the scalar elements (row tails)
  int64_t cols = 0, nb = 0;
  bool flat = false;     // one stream (nb = the period) or row by row (nb = cols / 16)
  int clip = 0;          // 0: no column clips (every lo is -inf or NaN, every hi +inf or NaN: the
                         // clip is the identity and is skipped); 1: no column has lo > hi (max /
                         // min, impute_clip_ordered); 2: the general impute_clip
  bool nt = false;       // streaming stores
  std::vector<double> q;
  int64_t chunk = 1;     // elements (flat) or rows per unit of work
  int64_t skew = 0;      // flat: unit u covers [u chunk - skew, (u + 1) chunk - skew), so a fresh
                         // output's units are its 2 MB pages (see numeric_transform)
  mutable std::atomic<int64_t> next{0};  // the next unit: threads take units as they go, so a
                                         // thread the OS preempts does not hold the others up
};

constexpr int64_t kQ = kTransformParams * kBlock;  // doubles per block in the table
constexpr int64_t kMaxPeriodBlocks = 1365;         // a period table up to ~1 MB (L2)

int64_t gcd64(int64_t a, int64_t b) { while (b) { const int64_t t = a % b; a = b; b = t; } return a; }

template <int Clip>
KF_INLINE double formula(double x, double f, double lo, double hi, double sh, double inv, double off) {
  const double v = Clip == 0   ? (is_nan(x) ? f : x)
                   : Clip == 1 ? impute_clip_ordered<double>(x, f, lo, hi)
                               : impute_clip<double>(x, f, lo, hi);
  return scale_shift<double>(v, sh, 0.0, inv, off);  // float64: shift_lo is 0
}

template <int K>
KF_INLINE typename OutT<K>::type to_out(double y) {
  if constexpr (K == 0) return static_cast<float>(y);
  else if constexpr (K == 1) return y;
  else if constexpr (K == 2) return float_to_half_bits(static_cast<float>(y));  // rounds twice, as documented
  else return bf16_bits(static_cast<float>(y));
}

// One output element of column c (the scalar form of the block loop).
template <typename T, int K, int Clip>
KF_INLINE typename OutT<K>::type element(T x, const double* __restrict p, int64_t cols, int64_t c) {
  return to_out<K>(formula<Clip>(static_cast<double>(x), p[kFill * cols + c], p[kLo * cols + c], p[kHi * cols + c],
                                    p[kShift * cols + c], p[kInvScale * cols + c], p[kOffset * cols + c]));
}

// 16 elements x[i * xs] with the block parameters q [6, 16] -> o[0..16) (NT: streaming stores,
// o 16-byte aligned).
template <typename T, int K, bool Contig, bool NT, int Clip>
KF_INLINE void block(const T* __restrict x, int64_t xs, const double* __restrict q, typename OutT<K>::type* __restrict o) {
  using O = typename OutT<K>::type;
  constexpr bool direct = !NT && K != 2;  // store straight from the vector registers
  alignas(64) O y[kBlock];
  alignas(64) float y32[kBlock];
  O* __restrict dst = direct ? o : y;
  if constexpr (K == 2) {
#pragma omp simd
    for (int i = 0; i < kBlock; ++i)
      y32[i] = static_cast<float>(formula<Clip>(static_cast<double>(x[Contig ? i : i * xs]), q[i], q[16 + i], q[32 + i],
                                                   q[48 + i], q[64 + i], q[80 + i]));
    for (int i = 0; i < kBlock; ++i) y[i] = float_to_half_bits(y32[i]);
  } else {
#pragma omp simd
    for (int i = 0; i < kBlock; ++i)
      dst[i] = to_out<K>(formula<Clip>(static_cast<double>(x[Contig ? i : i * xs]), q[i], q[16 + i], q[32 + i],
                                          q[48 + i], q[64 + i], q[80 + i]));
  }
  if constexpr (!direct) store_block<sizeof(y)>(o, y, NT);
}

// n consecutive elements x[e * xs] -> o[e], starting at table block b0 and column c0.
template <typename T, int K, bool Contig, bool NT, int Clip>
KF_INLINE void span(const T* __restrict x, int64_t xs, typename OutT<K>::type* __restrict o, int64_t n, int64_t b0,
                    int64_t c0, const Plan& pl) {
  const double* __restrict Q = pl.q.data();
  const double* qend = Q + pl.nb * kQ;
  const double* q = Q + b0 * kQ;
  int64_t e = 0;
  if (pl.nb > 0) {
    for (; e + kBlock <= n; e += kBlock) {
      // the hardware prefetcher alone leaves a core short of misses in flight behind the compute.
      // Into every cache level (prefetcht0): the non-temporal hint kept the lines out of L2 and
      // measured slower (1M x 32 float32 into a reused out, 2 threads, Intel Xeon: 22.9 vs 18.6 GB/s)
      if constexpr (Contig) __builtin_prefetch(x + e + kPrefetch, 0, 3);
      block<T, K, Contig, NT, Clip>(x + e * xs, xs, q, o + e);
      q += kQ;
      if (q == qend) q = Q;
    }
  }
  for (int64_t c = (c0 + e) % pl.cols; e < n; ++e) {
    o[e] = element<T, K, Clip>(x[e * xs], pl.p, pl.cols, c);
    if (++c == pl.cols) c = 0;
  }
}

// The work of one thread of the parallel region.
template <typename T, int K, bool NT, int Clip>
KF_INLINE void work(const TransformArgs& a, const Plan& pl, int tid, int nth) {
  using O = typename OutT<K>::type;
  const Mat &x = a.x, &out = a.out;
  const T* xd = static_cast<const T*>(x.data);
  O* od = static_cast<O*>(out.data);
  const int64_t rows = x.rows, cols = x.cols;
  (void)tid; (void)nth;
  if (pl.flat) {
    // one stream of rows * cols elements in units of pl.chunk (a multiple of the block)
    const int64_t n = rows * cols, xs = x.cs;
    for (int64_t u; (u = pl.next.fetch_add(1, std::memory_order_relaxed)) * pl.chunk - pl.skew < n;) {
      const int64_t e0 = std::max<int64_t>(0, u * pl.chunk - pl.skew), e1 = std::min(n, (u + 1) * pl.chunk - pl.skew);
      const int64_t b0 = e0 / kBlock;
      if (xs == 1) span<T, K, true, NT, Clip>(xd + e0, 1, od + e0, e1 - e0, b0 % pl.nb, e0 % cols, pl);
      else span<T, K, false, NT, Clip>(xd + e0 * xs, xs, od + e0, e1 - e0, b0 % pl.nb, e0 % cols, pl);
    }
    return;
  }
  for (int64_t u; (u = pl.next.fetch_add(1, std::memory_order_relaxed)) * pl.chunk < rows;) {
    for (int64_t r = u * pl.chunk, r1 = std::min(rows, r + pl.chunk); r < r1; ++r) {
      if (x.cs == 1) span<T, K, true, NT, Clip>(xd + r * x.rs, 1, od + r * out.rs, cols, 0, 0, pl);
      else span<T, K, false, NT, Clip>(xd + r * x.rs, x.cs, od + r * out.rs, cols, 0, 0, pl);
    }
  }
}

template <typename T, int K>
KF_INLINE void work_io(const TransformArgs& a, const Plan& pl, int tid, int nth) {
  if (pl.nt) {
    if (pl.clip == 0) return work<T, K, true, 0>(a, pl, tid, nth);
    return pl.clip == 1 ? work<T, K, true, 1>(a, pl, tid, nth) : work<T, K, true, 2>(a, pl, tid, nth);
  }
  if (pl.clip == 0) return work<T, K, false, 0>(a, pl, tid, nth);
  return pl.clip == 1 ? work<T, K, false, 1>(a, pl, tid, nth) : work<T, K, false, 2>(a, pl, tid, nth);
}

KF_INLINE void work_any(const TransformArgs& a, const Plan& pl, int tid, int nth) {
  const bool f32 = a.x.dtype == DType::f32;
  switch (a.out.dtype) {
    case DType::f32: return f32 ? work_io<float, 0>(a, pl, tid, nth) : work_io<double, 0>(a, pl, tid, nth);
    case DType::f64: return f32 ? work_io<float, 1>(a, pl, tid, nth) : work_io<double, 1>(a, pl, tid, nth);
    case DType::f16: return f32 ? work_io<float, 2>(a, pl, tid, nth) : work_io<double, 2>(a, pl, tid, nth);
    case DType::bf16: return f32 ? work_io<float, 3>(a, pl, tid, nth) : work_io<double, 3>(a, pl, tid, nth);
    default: break;
  }
}

// One entry per ISA level: the target attribute reaches the OpenMP region outlined from it.
#define KF_TRANSFORM_ENTRY(NAME, TARGET)                                   \
  TARGET void NAME(const TransformArgs& a, const Plan& pl) {               \
    _Pragma("omp parallel") {                                              \
      work_any(a, pl, thread_num(), num_threads());                        \
      stream_fence(pl.nt);                                                 \
    }                                                                      \
  }
KF_TRANSFORM_ENTRY(run_avx512, KF_TARGET_AVX512)
KF_TRANSFORM_ENTRY(run_avx2, KF_TARGET_AVX2)
KF_TRANSFORM_ENTRY(run_portable, )
#undef KF_TRANSFORM_ENTRY

}  // namespace

void numeric_transform(const Mat& x_, const double* params, const Mat& out_, bool fresh) {
  const TransformArgs a = make_transform_args(x_, params, out_);
  if (a.x.rows == 0 || a.x.cols == 0) return;
  const int64_t rows = a.x.rows, cols = a.x.cols, ob = dtype_bytes(a.out.dtype);
  Plan pl;
  pl.p = a.params;
  pl.cols = cols;
  const int64_t period = cols / gcd64(cols, kBlock);
  pl.flat = (rows == 1 || (a.x.rs == cols * a.x.cs && a.out.rs == cols)) && period <= kMaxPeriodBlocks;
  pl.nb = pl.flat ? period : cols / kBlock;
  bool clips = false, ordered = true;
  for (int64_t j = 0; j < cols; ++j) {
    const double lo = a.params[kLo * cols + j], hi = a.params[kHi * cols + j];
    clips = clips || lo > -INFINITY || hi < INFINITY;
    ordered = ordered && !(lo > hi);
  }
  pl.clip = !clips ? 0 : ordered ? 1 : 2;
  // streaming stores write whole 16-byte vectors: every block must start 16-byte aligned
  const uintptr_t base = reinterpret_cast<uintptr_t>(a.out.data);
  const bool aligned = base % 16 == 0 && (pl.flat || rows == 1 || (a.out.rs * ob) % 16 == 0);
  const int64_t out_bytes = ((rows - 1) * a.out.rs + cols) * ob;
  // a fresh page is zero-filled by the OS on its first write, which leaves its lines in the cache:
  // plain stores then hit them, streaming stores would evict them first (measured slower)
  pl.nt = aligned && !fresh && use_nt_stores(rows * cols * ob);
  constexpr int64_t kUnit = int64_t(1) << 15;  // elements per unit of work (128 KB of float32 in + out)
  pl.chunk = pl.flat ? kUnit : std::max<int64_t>(1, kUnit / cols);
  if (fresh && out_bytes >= 2 * kHugePage) {
    // A fresh output faults on its first write. Ask for huge pages, and make each unit of work one
    // whole 2 MB page of the output, so the threads fault different pages in parallel (units
    // smaller than a page would put both threads in the same page, one waiting on the other's
    // fault, and the zero-fill would run on one core).
    advise_fresh(a.out.data, out_bytes);
    if (pl.flat) {
      pl.chunk = kHugePage / ob;
      pl.skew = (static_cast<int64_t>(base % kHugePage) / ob) / kBlock * kBlock;
    } else {
      pl.chunk = std::max<int64_t>(1, kHugePage / (a.out.rs * ob));
    }
  }
  pl.q.resize(static_cast<size_t>(pl.nb * kQ));
  for (int64_t b = 0; b < pl.nb; ++b)
    for (int k = 0; k < kTransformParams; ++k)
      for (int i = 0; i < kBlock; ++i) pl.q[(b * kTransformParams + k) * kBlock + i] = a.params[k * cols + (b * kBlock + i) % cols];
  KF_ISA_DISPATCH(run, a, pl);
}

const char* transform_cpu_path() { return isa_name(isa()); }

}  // namespace kf::cpu
