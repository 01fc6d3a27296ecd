// One-hot and ordinal encoding on the CPU: each thread takes a contiguous range of rows. A one-hot
// row is zeroed with one vectorised loop and then gets its F ones while it sits in L1, so memory
// sees each output byte once; outputs larger than the cache are assembled in tiles and streamed
// out with non-temporal stores (common/stream_store.h). Argument checks and the code -> slot rule:
// common/onehot.h, shared with the CUDA launcher.
#include "cpu/onehot.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/cpu_isa.h"
#include "common/half.h"
#include "common/simd.h"
#include "common/stream_store.h"

namespace kf::cpu {
namespace {

// OutKind: 0 float32, 1 float64, 2 float16 bits, 3 bfloat16 bits, 4 int64 (ordinal only)
template <int K> struct OutT { using type = uint16_t; };
template <> struct OutT<0> { using type = float; };
template <> struct OutT<1> { using type = double; };
template <> struct OutT<4> { using type = int64_t; };

// Error counts per thread, added to the shared [F] array once at the end.
struct Errors {
  std::vector<int32_t> n;
  explicit Errors(int64_t F) : n(static_cast<size_t>(F), 0) {}
  void flush(int32_t* errors) {
    for (size_t j = 0; j < n.size(); ++j)
      if (n[j]) __atomic_fetch_add(errors + j, n[j], __ATOMIC_RELAXED);
  }
};

// One-hot row r into orow [W] (zeroed here).
template <int K>
KF_INLINE void one_hot_row(const OneHotArgs& a, int64_t r, typename OutT<K>::type* __restrict orow, Errors& err) {
  using O = typename OutT<K>::type;
  const O one = K == 0 ? O(1) : K == 1 ? O(1) : O(K == 2 ? 0x3C00u : 0x3F80u);
  const int64_t F = a.codes.cols, W = a.out.cols;
  const int64_t *off = a.feat, *toff = a.feat + 2 * F, *Kc = a.feat + 3 * F;
  const int32_t* crow = static_cast<const int32_t*>(a.codes.data) + r * a.codes.rs;
#pragma omp simd
  for (int64_t c = 0; c < W; ++c) orow[c] = O(0);
  for (int64_t j = 0; j < F; ++j) {
    const int32_t o = a.table[toff[j] + code_slot(crow[j * a.codes.cs], Kc[j])];
    if (o == -2) ++err.n[j];
    if (o >= 0) orow[off[j] + o] = one;
  }
}

template <int K>
KF_INLINE void one_hot_work(const OneHotArgs& a, bool nt, int tid, int nth) {
  using O = typename OutT<K>::type;
  const int64_t rows = a.codes.rows, W = a.out.cols;
  const int64_t r0 = rows * tid / nth, r1 = rows * (tid + 1) / nth;
  if (r1 <= r0) return;
  Errors err(a.codes.cols);
  O* od = static_cast<O*>(a.out.data);
  if (!nt || W == 0) {
    for (int64_t r = r0; r < r1; ++r) one_hot_row<K>(a, r, od + r * a.out.rs, err);
  } else {
    // tiles of ~16 KB assembled in cache, then streamed
    const int64_t th = std::max<int64_t>(1, (int64_t(16) << 10) / (W * static_cast<int64_t>(sizeof(O))));
    std::vector<O> buf(static_cast<size_t>(th * W) + 64 / sizeof(O));
    O* tile = reinterpret_cast<O*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
    for (int64_t r = r0; r < r1; r += th) {
      const int64_t n = std::min(th, r1 - r);
      for (int64_t i = 0; i < n; ++i) one_hot_row<K>(a, r + i, tile + i * W, err);
      if (a.out.rs == W || n == 1) {
        stream_copy(reinterpret_cast<char*>(od + r * a.out.rs), reinterpret_cast<const char*>(tile), n * W * sizeof(O), true);
      } else {
        for (int64_t i = 0; i < n; ++i)
          stream_copy(reinterpret_cast<char*>(od + (r + i) * a.out.rs), reinterpret_cast<const char*>(tile + i * W),
                      W * sizeof(O), true);
      }
    }
  }
  err.flush(a.errors);
}

template <int K>
KF_INLINE void ordinal_work(const OrdinalArgs& a, int tid, int nth) {
  using O = typename OutT<K>::type;
  const int64_t rows = a.codes.rows, F = a.codes.cols;
  const int64_t r0 = rows * tid / nth, r1 = rows * (tid + 1) / nth;
  if (r1 <= r0) return;
  const int64_t *toff = a.feat, *Kc = a.feat + F, *ebits = a.feat + 2 * F;
  Errors err(F);
  for (int64_t r = r0; r < r1; ++r) {
    O* __restrict orow = static_cast<O*>(a.out.data) + r * a.out.rs;
    const int32_t* crow = static_cast<const int32_t*>(a.codes.data) + r * a.codes.rs;
    for (int64_t j = 0; j < F; ++j) {
      const int64_t s = code_slot(crow[j * a.codes.cs], Kc[j]);
      const bool bad = (s == Kc[j] && (ebits[j] & 1)) || (s == Kc[j] + 1 && (ebits[j] & 2));
      double v = a.table[toff[j] + s];
      if (bad) {
        v = 0.0;
        ++err.n[j];
      }
      if constexpr (K == 0 || K == 1) orow[j] = static_cast<O>(v);
      else if constexpr (K == 4) orow[j] = (v == v) ? static_cast<int64_t>(v) : 0;  // NaN is rejected in Python
      else if constexpr (K == 2) orow[j] = float_to_half_bits(static_cast<float>(v));
      else orow[j] = float_to_bf16_bits(static_cast<float>(v));
    }
  }
  err.flush(a.errors);
}

KF_INLINE void one_hot_any(const OneHotArgs& a, bool nt, int tid, int nth) {
  switch (a.out.dtype) {
    case DType::f32: return one_hot_work<0>(a, nt, tid, nth);
    case DType::f64: return one_hot_work<1>(a, nt, tid, nth);
    case DType::f16: return one_hot_work<2>(a, nt, tid, nth);
    case DType::bf16: return one_hot_work<3>(a, nt, tid, nth);
    default: break;
  }
}

KF_INLINE void ordinal_any(const OrdinalArgs& a, int tid, int nth) {
  switch (a.out.dtype) {
    case DType::f32: return ordinal_work<0>(a, tid, nth);
    case DType::f64: return ordinal_work<1>(a, tid, nth);
    case DType::f16: return ordinal_work<2>(a, tid, nth);
    case DType::bf16: return ordinal_work<3>(a, tid, nth);
    case DType::i64: return ordinal_work<4>(a, tid, nth);
    default: break;
  }
}

// One entry per ISA level and op: the target attribute reaches the OpenMP region outlined from it.
#define KF_ONEHOT_ENTRIES(SUFFIX, TARGET)                                   \
  TARGET void one_hot_##SUFFIX(const OneHotArgs& a, bool nt) {              \
    _Pragma("omp parallel") {                                               \
      one_hot_any(a, nt, thread_num(), num_threads());                      \
      stream_fence(nt);                                                     \
    }                                                                       \
  }                                                                         \
  TARGET void ordinal_##SUFFIX(const OrdinalArgs& a) {                      \
    _Pragma("omp parallel") ordinal_any(a, thread_num(), num_threads());    \
  }
KF_ONEHOT_ENTRIES(avx512, KF_TARGET_AVX512)
KF_ONEHOT_ENTRIES(avx2, KF_TARGET_AVX2)
KF_ONEHOT_ENTRIES(portable, )
#undef KF_ONEHOT_ENTRIES

}  // namespace

void one_hot(const Mat& codes, const int64_t* feat, const int32_t* table, int64_t table_size,
             const int32_t* slots, int64_t n_slots, const Mat& out, int32_t* errors) {
  const OneHotArgs a = make_one_hot_args(codes, feat, table, table_size, slots, n_slots, out, errors);
  check_one_hot_layout_host(a);
  if (codes.rows == 0) return;
  const bool nt = use_nt_stores(out.rows * out.cols * dtype_bytes(out.dtype));
  KF_ISA_DISPATCH(one_hot, a, nt);
}

void ordinal_encode(const Mat& codes, const int64_t* feat, const double* table, int64_t table_size,
                    const Mat& out, int32_t* errors) {
  const OrdinalArgs a = make_ordinal_args(codes, feat, table, table_size, out, errors);
  check_ordinal_layout_host(a);
  if (codes.rows == 0 || codes.cols == 0) return;
  KF_ISA_DISPATCH(ordinal, a);
}

const char* onehot_cpu_path() { return isa_name(isa()); }

}  // namespace kf::cpu
