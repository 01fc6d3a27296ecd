// Fused impute -> clip -> scale on the CPU, streamed at memory speed: the element formula is
// kf::impute_clip_scale (common/transform.h, shared with CUDA and the table kernels), computed in
// float64 on 16 elements at a time (vectorised by the compiler at the run-time ISA level: 2 x 8
// doubles on AVX-512, 4 x 4 on AVX2, 8 x 2 on SSE2), with the per-column parameters tiled so a
// block starting at any column reads them contiguously from L1. A contiguous x and out are one
// flat stream split between the threads; outputs past the cache size go out with non-temporal
// stores (common/stream_store.h).
#include "cpu/transform.h"

#include <algorithm>
#include <cstdint>
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

// The parameters in float64, each row repeated past the last column ([6, ld], ld >= cols + 16),
// so the 16 columns of a block starting at column c < cols are P[k * ld + c .. c + 16).
struct Tiled {
  std::vector<double> buf;
  int64_t ld = 0, cols = 0, step = 0;  // step: how far the column advances per block (16 mod cols)
  Tiled(const double* params /* [6, cols] */, int64_t cols_) : cols(cols_) {
    ld = (cols + kBlock + 7) & ~int64_t(7);
    step = cols > 0 ? kBlock % cols : 0;
    buf.resize(static_cast<size_t>(kTransformParams * ld));
    for (int k = 0; k < kTransformParams; ++k)
      for (int64_t i = 0; i < ld; ++i) buf[k * ld + i] = cols > 0 ? params[k * cols + i % cols] : 0.0;
  }
};

// One output element of column c (the scalar form of the block loop).
template <typename T, int K>
KF_INLINE typename OutT<K>::type element(T x, const double* __restrict P, int64_t ld, int64_t c) {
  const double y = impute_clip_scale<double>(static_cast<double>(x), P[c], P[ld + c], P[2 * ld + c], P[3 * ld + c],
                                             0.0, P[4 * ld + c], P[5 * ld + c]);
  if constexpr (K == 0) return static_cast<float>(y);
  else if constexpr (K == 1) return y;
  else if constexpr (K == 2) return float_to_half_bits(static_cast<float>(y));  // rounds twice, as documented
  else return bf16_bits(static_cast<float>(y));
}

// 16 elements x[0..16) (element stride xs; 1 = contiguous) starting at column c -> y[0..16).
template <typename T, int K, bool Contig>
KF_INLINE void block(const T* __restrict x, int64_t xs, const double* __restrict P, int64_t ld, int64_t c,
                     typename OutT<K>::type* __restrict y) {
  const double* __restrict f = P + c;
  const double* __restrict lo = P + ld + c;
  const double* __restrict hi = P + 2 * ld + c;
  const double* __restrict sh = P + 3 * ld + c;
  const double* __restrict inv = P + 4 * ld + c;
  const double* __restrict off = P + 5 * ld + c;
  if constexpr (K == 2) {
    alignas(64) float y32[kBlock];
#pragma omp simd
    for (int i = 0; i < kBlock; ++i)
      y32[i] = static_cast<float>(impute_clip_scale<double>(static_cast<double>(x[Contig ? i : i * xs]), f[i], lo[i],
                                                            hi[i], sh[i], 0.0, inv[i], off[i]));
    for (int i = 0; i < kBlock; ++i) y[i] = float_to_half_bits(y32[i]);
  } else {
#pragma omp simd
    for (int i = 0; i < kBlock; ++i) {
      const double v = impute_clip_scale<double>(static_cast<double>(x[Contig ? i : i * xs]), f[i], lo[i], hi[i],
                                                 sh[i], 0.0, inv[i], off[i]);
      if constexpr (K == 0) y[i] = static_cast<float>(v);
      else if constexpr (K == 1) y[i] = v;
      else y[i] = bf16_bits(static_cast<float>(v));
    }
  }
}

// n consecutive elements x[e * xs] -> o[e], the first of column c; nt: streaming stores.
template <typename T, int K, bool Contig>
KF_INLINE void span(const T* __restrict x, int64_t xs, typename OutT<K>::type* __restrict o, int64_t n, int64_t c,
                    const Tiled& t, bool nt) {
  using O = typename OutT<K>::type;
  const double* __restrict P = t.buf.data();
  const int64_t ld = t.ld, cols = t.cols;
  int64_t e = 0;
  // streaming stores start on a cache line (an element-misaligned out cannot get there: plain stores)
  if (nt && reinterpret_cast<uintptr_t>(o) % sizeof(O) != 0) nt = false;
  if (nt) {
    for (; e < n && (reinterpret_cast<uintptr_t>(o + e) & 63) != 0; ++e) {
      o[e] = element<T, K>(x[e * xs], P, ld, c);
      if (++c == cols) c = 0;
    }
  }
  for (; e + kBlock <= n; e += kBlock) {
    // the hardware prefetcher alone leaves a core short of misses in flight behind the compute
    if constexpr (Contig) __builtin_prefetch(x + e + kPrefetch, 0, 0);
    alignas(64) O y[kBlock];
    block<T, K, Contig>(x + e * xs, xs, P, ld, c, y);
    store_block<sizeof(y)>(o + e, y, nt);
    c += t.step;
    if (c >= cols) c -= cols;
  }
  for (; e < n; ++e) {
    o[e] = element<T, K>(x[e * xs], P, ld, c);
    if (++c == cols) c = 0;
  }
}

// The work of one thread of the parallel region.
template <typename T, int K>
KF_INLINE void work(const TransformArgs& a, const Tiled& t, bool nt, int tid, int nth) {
  using O = typename OutT<K>::type;
  const Mat &x = a.x, &out = a.out;
  const T* xd = static_cast<const T*>(x.data);
  O* od = static_cast<O*>(out.data);
  const int64_t rows = x.rows, cols = x.cols;
  const bool flat = rows == 1 || (x.rs == cols * x.cs && out.rs == cols);
  if (flat) {
    // one stream of rows * cols elements, split into per-thread pieces of whole blocks
    const int64_t n = rows * cols, xs = x.cs;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    const int64_t b0 = blocks * tid / nth, b1 = blocks * (tid + 1) / nth;
    const int64_t e0 = b0 * kBlock, e1 = std::min(n, b1 * kBlock);
    if (e1 <= e0) return;
    if (xs == 1) span<T, K, true>(xd + e0, 1, od + e0, e1 - e0, e0 % cols, t, nt);
    else span<T, K, false>(xd + e0 * xs, xs, od + e0, e1 - e0, e0 % cols, t, nt);
    return;
  }
  const int64_t r0 = rows * tid / nth, r1 = rows * (tid + 1) / nth;
  for (int64_t r = r0; r < r1; ++r) {
    if (x.cs == 1) span<T, K, true>(xd + r * x.rs, 1, od + r * out.rs, cols, 0, t, nt);
    else span<T, K, false>(xd + r * x.rs, x.cs, od + r * out.rs, cols, 0, t, nt);
  }
}

KF_INLINE void work_any(const TransformArgs& a, const Tiled& t, bool nt, int tid, int nth) {
  const bool f32 = a.x.dtype == DType::f32;
  switch (a.out.dtype) {
    case DType::f32: return f32 ? work<float, 0>(a, t, nt, tid, nth) : work<double, 0>(a, t, nt, tid, nth);
    case DType::f64: return f32 ? work<float, 1>(a, t, nt, tid, nth) : work<double, 1>(a, t, nt, tid, nth);
    case DType::f16: return f32 ? work<float, 2>(a, t, nt, tid, nth) : work<double, 2>(a, t, nt, tid, nth);
    case DType::bf16: return f32 ? work<float, 3>(a, t, nt, tid, nth) : work<double, 3>(a, t, nt, tid, nth);
    default: break;
  }
}

// One entry per ISA level: the target attribute reaches the OpenMP region outlined from it.
#define KF_TRANSFORM_ENTRY(NAME, TARGET)                                   \
  TARGET void NAME(const TransformArgs& a, const Tiled& t, bool nt) {      \
    _Pragma("omp parallel") {                                              \
      work_any(a, t, nt, thread_num(), num_threads());                     \
      stream_fence(nt);                                                    \
    }                                                                      \
  }
KF_TRANSFORM_ENTRY(run_avx512, KF_TARGET_AVX512)
KF_TRANSFORM_ENTRY(run_avx2, KF_TARGET_AVX2)
KF_TRANSFORM_ENTRY(run_portable, )
#undef KF_TRANSFORM_ENTRY

}  // namespace

void numeric_transform(const Mat& x_, const double* params, const Mat& out_) {
  const TransformArgs a = make_transform_args(x_, params, out_);
  if (a.x.rows == 0 || a.x.cols == 0) return;
  const Tiled t(a.params, a.x.cols);
  const bool nt = use_nt_stores(a.out.rows * a.out.cols * static_cast<int64_t>(dtype_bytes(a.out.dtype)));
  KF_ISA_DISPATCH(run, a, t, nt);
}

const char* transform_cpu_path() { return isa_name(isa()); }

}  // namespace kf::cpu
