// Fused whole-table transform on the CPU: each thread takes a contiguous range of rows and
// assembles tiles of output rows in an L1/L2 buffer (numeric columns: impute -> clip -> nonlinear
// -> scale in float64, the formula of common/transform.h and common/table.h; missing indicators;
// the one of each one-hot block; ordinal values), then writes each tile to memory once, with
// non-temporal stores when the output is larger than the cache (common/stream_store.h). The
// leading numeric columns (output columns 0..lead-1, no nonlinear step) are one vectorised loop
// at the run-time ISA level.
#include "cpu/table.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/cpu_isa.h"
#include "common/half.h"
#include "common/simd.h"
#include "common/stream_store.h"

// separate roundings, as in the reference (see cpu/transform.cpp)
#pragma GCC optimize("fp-contract=off")

namespace kf::cpu {
namespace {

template <int K> struct OutT { using type = uint16_t; };  // OutKind: 0 f32, 1 f64, 2 f16, 3 bf16
template <> struct OutT<0> { using type = float; };
template <> struct OutT<1> { using type = double; };

template <int K>
KF_INLINE typename OutT<K>::type conv(double v) {
  if constexpr (K == 0) return static_cast<float>(v);
  else if constexpr (K == 1) return v;
  else if constexpr (K == 2) return float_to_half_bits(static_cast<float>(v));
  else return float_to_bf16_bits(static_cast<float>(v));
}

// Everything the threads share: the spec, the leading numeric columns' parameters as separate
// float64 rows ([6, lead]), the tile height.
struct Plan {
  const TableSpec* s;
  int64_t lead = 0;
  std::vector<double> q;  // [6, lead]: fill, lo, hi, shift, inv_scale, offset
  int64_t tile_rows = 1;
  int64_t unit_tiles = 1;  // tiles per unit of work (see table_transform)
  bool ordered = true;  // no leading column has lo > hi: the clip is max / min (impute_clip_ordered)
  bool nt = false;
  mutable std::atomic<int64_t> next{0};  // the next tile: threads take tiles as they go, so a
                                         // thread the OS preempts does not hold the others up
};

template <bool Ordered>
KF_INLINE double lead_formula(double x, double f, double lo, double hi, double sh, double inv, double off) {
  const double v = Ordered ? impute_clip_ordered<double>(x, f, lo, hi) : impute_clip<double>(x, f, lo, hi);
  return scale_shift<double>(v, sh, 0.0, inv, off);  // float64: shift_lo is 0
}

// Output rows [r, r + n) of the tile buffer `tile` ([n, W], zeroed by the caller).
template <typename T, int K, bool Ordered>
KF_INLINE void assemble(const Mat& x, const Mat& codes, const Plan& pl, int64_t r, int64_t n,
                        typename OutT<K>::type* __restrict tile) {
  using O = typename OutT<K>::type;
  const TableSpec& s = *pl.s;
  const T* xd = static_cast<const T*>(x.data);
  const int32_t* cd = static_cast<const int32_t*>(codes.data);
  const int64_t W = s.W, Fn = s.Fn, lead = pl.lead;
  const double* p = s.params;
  const double* __restrict f = pl.q.data();
  const double* __restrict lo = f + lead;
  const double* __restrict hi = lo + lead;
  const double* __restrict sh = hi + lead;
  const double* __restrict inv = sh + lead;
  const double* __restrict off = inv + lead;
  for (int64_t i = 0; i < n; ++i) {
    O* __restrict row = tile + i * W;
    const T* __restrict xr = xd + (r + i) * x.rs;
    if (x.cs == 1) {
      if constexpr (K == 2) {
        for (int64_t j = 0; j < lead; ++j)
          row[j] = conv<K>(lead_formula<Ordered>(static_cast<double>(xr[j]), f[j], lo[j], hi[j], sh[j], inv[j], off[j]));
      } else {
#pragma omp simd
        for (int64_t j = 0; j < lead; ++j)
          row[j] = conv<K>(lead_formula<Ordered>(static_cast<double>(xr[j]), f[j], lo[j], hi[j], sh[j], inv[j], off[j]));
      }
    } else {
      for (int64_t j = 0; j < lead; ++j)
        row[j] = conv<K>(lead_formula<Ordered>(static_cast<double>(xr[j * x.cs]), f[j], lo[j], hi[j], sh[j], inv[j], off[j]));
    }
    for (int64_t j = lead; j < Fn; ++j) {
      double v = impute_clip<double>(static_cast<double>(xr[j * x.cs]), p[kFill * Fn + j], p[kLo * Fn + j], p[kHi * Fn + j]);
      v = table_nonlinear<double>(v, p[kFn * Fn + j], p[kLambda * Fn + j]);
      row[s.num_out[j]] = conv<K>(scale_shift<double>(v, p[kShift * Fn + j], 0.0, p[kInvScale * Fn + j], p[kOffset * Fn + j]));
    }
    for (int64_t k = 0; k < s.Fi; ++k) row[s.ind_out[k]] = conv<K>(is_nan(xr[s.ind_src[k] * x.cs]) ? 1.0 : 0.0);
    const int32_t* cr = cd + (r + i) * codes.rs;
    for (int64_t c = 0; c < s.Fc; ++c) {
      const int64_t code = cr[c * codes.cs];
      const bool known = code >= 0 && code < s.cat_k[c];
      if (s.cat_mode[c] == 1) {
        row[s.cat_off[c]] = conv<K>(known ? static_cast<double>(code) : s.cat_unk_value[c]);
        continue;
      }
      const int64_t slot = known ? s.cat_tab[s.cat_toff[c] + code] : s.cat_unk[c];
      if (slot >= 0 && slot < s.cat_width[c]) row[s.cat_off[c] + slot] = conv<K>(1.0);
    }
  }
}

// The work of one thread: a contiguous range of rows, a tile at a time.
template <typename T, int K>
KF_INLINE void work(const Mat& x, const Mat& codes, const Plan& pl, const Mat& out, int tid, int nth) {
  using O = typename OutT<K>::type;
  (void)tid; (void)nth;
  const int64_t N = out.rows, W = pl.s->W;
  const int64_t th = pl.tile_rows;
  std::vector<O> buf(static_cast<size_t>(th * W) + 64 / sizeof(O));
  O* tile = reinterpret_cast<O*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  O* od = static_cast<O*>(out.data);
  const int64_t ut = pl.unit_tiles;
  for (int64_t u; (u = pl.next.fetch_add(1, std::memory_order_relaxed)) * ut * th < N;)
  for (int64_t t = u * ut; t < (u + 1) * ut && t * th < N; ++t) {
    const int64_t r = t * th, n = std::min(th, N - r);
    std::memset(tile, 0, static_cast<size_t>(n * W) * sizeof(O));  // all-zero bits are +0.0 in every output dtype
    if (pl.ordered) assemble<T, K, true>(x, codes, pl, r, n, tile);
    else assemble<T, K, false>(x, codes, pl, r, n, tile);
    if (out.rs == W) {
      stream_copy(reinterpret_cast<char*>(od + r * W), reinterpret_cast<const char*>(tile), n * W * sizeof(O), pl.nt);
    } else {
      for (int64_t i = 0; i < n; ++i)
        stream_copy(reinterpret_cast<char*>(od + (r + i) * out.rs), reinterpret_cast<const char*>(tile + i * W),
                    W * sizeof(O), pl.nt);
    }
  }
}

KF_INLINE void work_any(const Mat& x, const Mat& codes, const Plan& pl, const Mat& out, int tid, int nth) {
  const bool f32 = x.dtype == DType::f32;
  switch (out.dtype) {
    case DType::f32: return f32 ? work<float, 0>(x, codes, pl, out, tid, nth) : work<double, 0>(x, codes, pl, out, tid, nth);
    case DType::f64: return f32 ? work<float, 1>(x, codes, pl, out, tid, nth) : work<double, 1>(x, codes, pl, out, tid, nth);
    case DType::f16: return f32 ? work<float, 2>(x, codes, pl, out, tid, nth) : work<double, 2>(x, codes, pl, out, tid, nth);
    case DType::bf16: return f32 ? work<float, 3>(x, codes, pl, out, tid, nth) : work<double, 3>(x, codes, pl, out, tid, nth);
    default: break;
  }
}

// One entry per ISA level: the target attribute reaches the OpenMP region outlined from it.
#define KF_TABLE_ENTRY(NAME, TARGET)                                                  \
  TARGET void NAME(const Mat& x, const Mat& codes, const Plan& pl, const Mat& out) {  \
    _Pragma("omp parallel") {                                                         \
      work_any(x, codes, pl, out, thread_num(), num_threads());                       \
      stream_fence(pl.nt);                                                            \
    }                                                                                 \
  }
KF_TABLE_ENTRY(run_avx512, KF_TARGET_AVX512)
KF_TABLE_ENTRY(run_avx2, KF_TARGET_AVX2)
KF_TABLE_ENTRY(run_portable, )
#undef KF_TABLE_ENTRY

}  // namespace

void table_transform(const Mat& xnum, const Mat& codes, const TableSpec& s, const Mat& out) {
  check_table_args(xnum, codes, s, out);
  check_table_spec_host(s);
  if (out.rows == 0 || s.W == 0) return;
  Plan pl;
  pl.s = &s;
  const int64_t Fn = s.Fn;
  while (pl.lead < Fn && s.num_out[pl.lead] == pl.lead && s.params[kFn * Fn + pl.lead] == 0.0) ++pl.lead;
  pl.q.resize(static_cast<size_t>(6 * pl.lead));
  for (int k = 0; k < 6; ++k)
    for (int64_t j = 0; j < pl.lead; ++j) pl.q[k * pl.lead + j] = s.params[k * Fn + j];
  for (int64_t j = 0; j < pl.lead; ++j) pl.ordered = pl.ordered && !(pl.q[kLo * pl.lead + j] > pl.q[kHi * pl.lead + j]);
  const int64_t row_bytes = s.W * dtype_bytes(out.dtype);
  pl.tile_rows = std::max<int64_t>(1, (int64_t(16) << 10) / row_bytes);  // ~16 KB tiles: in L1/L2 while assembled
  pl.nt = use_nt_stores(out.rows * row_bytes);
  // A large output is handed out in runs of tiles of about one 2 MB page, so that on a fresh
  // output (huge pages: ops/table.py advises them) the two threads fault different pages in
  // parallel instead of one waiting on the other's fault of a shared page; 32 runs at least, so
  // a preempted thread still leaves the rest to the others.
  const int64_t tile_bytes = pl.tile_rows * row_bytes;
  if (out.rows * row_bytes >= 32 * kHugePage) pl.unit_tiles = std::max<int64_t>(1, kHugePage / tile_bytes);
  KF_ISA_DISPATCH(run, xnum, codes, pl, out);
}

const char* table_cpu_path() { return isa_name(isa()); }

}  // namespace kf::cpu
