// Fused whole-table transform on the CPU: OpenMP over row chunks; each output row is assembled in
// an L1 buffer (numeric columns: impute -> clip -> log1p/sqrt -> scale in float64; missing
// indicators; the one of each one-hot block; ordinal values) and streamed to memory once.
#include "cpu/table.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/half.h"
#include "common/simd.h"

namespace kf::cpu {
namespace {

// Copy one finished output row to memory with non-temporal stores: the output is written once
// and not read back here, so streaming it past the cache halves the memory traffic of a wide
// output (no read-for-ownership of lines about to be overwritten).
inline void stream_row(char* dst, const char* src, size_t n) {
#if defined(__SSE2__)
  size_t head = (16 - (reinterpret_cast<uintptr_t>(dst) & 15)) & 15;
  if (head > n) head = n;
  std::memcpy(dst, src, head);
  size_t i = head;
  for (; i + 16 <= n; i += 16)
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
  std::memcpy(dst + i, src + i, n - i);
#else
  std::memcpy(dst, src, n);
#endif
}

// Leading numeric columns that go to output columns 0..n-1 with no log1p/sqrt: one vectorised
// loop (cloned per ISA). C is the compute type; q holds [7, n] params in C (shift split hi + lo).
template <typename T, typename C>
KF_INLINE void numeric_lead(const T* __restrict xr, int64_t xcs, int64_t n, const C* __restrict q, C* __restrict y) {
  const C* fill = q; const C* lo = q + n; const C* hi = q + 2 * n; const C* sh = q + 3 * n;
  const C* inv = q + 4 * n; const C* off = q + 5 * n; const C* sl = q + 6 * n;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const C x0 = static_cast<C>(xr[j * xcs]), f = fill[j], l = lo[j], h = hi[j];
    C v = (x0 != x0) ? f : x0;
    v = v < l ? l : (v > h ? h : v);
    y[j] = ((v - sh[j]) - sl[j]) * inv[j] + off[j];
  }
}
KF_CLONES void numeric_lead_f32(const float* xr, int64_t xcs, int64_t n, const float* q, float* y) { numeric_lead(xr, xcs, n, q, y); }
KF_CLONES void numeric_lead_f64(const double* xr, int64_t xcs, int64_t n, const double* q, double* y) { numeric_lead(xr, xcs, n, q, y); }

// The nonlinear step (scipy.stats.yeojohnson / scipy.special.boxcox, with their eps rules).
inline double nonlinear(double v, double fn, double lam) {
  constexpr double eps = 2.220446049250313e-16;  // np.spacing(1.0)
  if (fn == 1.0) return std::log1p(v);
  if (fn == 2.0) return std::sqrt(v);
  if (fn == 3.0) {
    if (v >= 0) return std::fabs(lam) < eps ? std::log1p(v) : std::expm1(lam * std::log1p(v)) / lam;
    return std::fabs(lam - 2) > eps ? -std::expm1((2 - lam) * std::log1p(-v)) / (2 - lam) : -std::log1p(-v);
  }
  if (fn == 4.0) return lam == 0 ? std::log(v) : std::expm1(lam * std::log(v)) / lam;
  return v;
}

template <typename T, int OutKind>  // OutKind: 0 f32, 1 f64, 2 f16, 3 bf16
void run(const Mat& x, const Mat& codes, const TableSpec& s, const Mat& out) {
  using O = std::conditional_t<OutKind == 0, float, std::conditional_t<OutKind == 1, double, uint16_t>>;
  const T* xd = static_cast<const T*>(x.data);
  const int32_t* cd = static_cast<const int32_t*>(codes.data);
  const int64_t N = out.rows, W = s.W, Fn = s.Fn;
  const double* p = s.params;
  auto conv = [](double v) -> O {
    if constexpr (OutKind == 0) return static_cast<float>(v);
    else if constexpr (OutKind == 1) return v;
    else if constexpr (OutKind == 2) return float_to_half_bits(static_cast<float>(v));
    else return float_to_bf16_bits(static_cast<float>(v));
  };
  // float32 in and out computes in fp32 (shift split hi + lo); float64 input or output in float64
  using C = std::conditional_t<std::is_same_v<T, float> && OutKind != 1, float, double>;
  int64_t lead = 0;
  while (lead < Fn && s.num_out[lead] == lead && p[6 * Fn + lead] == 0.0) ++lead;
  std::vector<C> q(7 * lead);
  for (int64_t j = 0; j < lead; ++j) {
    for (int k = 0; k < 6; ++k) q[k * lead + j] = static_cast<C>(p[k * Fn + j]);
    q[6 * lead + j] = static_cast<C>(p[3 * Fn + j] - static_cast<double>(q[3 * lead + j]));
  }
#pragma omp parallel
  {
    std::vector<O> row(W);  // the row is assembled in L1, then streamed out
    std::vector<C> y(lead);
#pragma omp for schedule(static, 256)
    for (int64_t r = 0; r < N; ++r) {
      std::memset(row.data(), 0, W * sizeof(O));  // all-zero bits are +0.0 in every output dtype
      if (lead) {
        if constexpr (std::is_same_v<C, float>) numeric_lead_f32(xd + r * x.rs, x.cs, lead, q.data(), y.data());
        else if constexpr (std::is_same_v<T, double>) numeric_lead_f64(xd + r * x.rs, x.cs, lead, q.data(), y.data());
        else numeric_lead(xd + r * x.rs, x.cs, lead, q.data(), y.data());  // float32 in, float64 out
        for (int64_t j = 0; j < lead; ++j) row[j] = conv(static_cast<double>(y[j]));
      }
      for (int64_t j = lead; j < Fn; ++j) {
        double v = static_cast<double>(xd[r * x.rs + j * x.cs]);
        v = (v != v) ? p[j] : v;
        v = v < p[Fn + j] ? p[Fn + j] : (v > p[2 * Fn + j] ? p[2 * Fn + j] : v);  // NaN kept
        v = nonlinear(v, p[6 * Fn + j], p[7 * Fn + j]);
        row[s.num_out[j]] = conv((v - p[3 * Fn + j]) * p[4 * Fn + j] + p[5 * Fn + j]);
      }
      for (int64_t i = 0; i < s.Fi; ++i) {
        const T v = xd[r * x.rs + s.ind_src[i] * x.cs];
        row[s.ind_out[i]] = conv(v != v ? 1.0 : 0.0);
      }
      for (int64_t c = 0; c < s.Fc; ++c) {
        const int64_t code = cd[r * codes.rs + c * codes.cs];
        const bool known = code >= 0 && code < s.cat_k[c];
        if (s.cat_mode[c] == 1) {
          row[s.cat_off[c]] = conv(known ? static_cast<double>(code) : s.cat_unk_value[c]);
          continue;
        }
        const int64_t slot = known ? s.cat_tab[s.cat_toff[c] + code] : s.cat_unk[c];
        if (slot >= 0 && slot < s.cat_width[c]) row[s.cat_off[c] + slot] = conv(1.0);
      }
      stream_row(reinterpret_cast<char*>(static_cast<O*>(out.data) + r * out.rs),
                 reinterpret_cast<const char*>(row.data()), W * sizeof(O));
    }
#if defined(__SSE2__)
    _mm_sfence();  // streamed stores are visible before the kernel returns
#endif
  }
}

template <typename T>
void dispatch(const Mat& x, const Mat& codes, const TableSpec& s, const Mat& out) {
  switch (out.dtype) {
    case DType::f32: return run<T, 0>(x, codes, s, out);
    case DType::f64: return run<T, 1>(x, codes, s, out);
    case DType::f16: return run<T, 2>(x, codes, s, out);
    case DType::bf16: return run<T, 3>(x, codes, s, out);
    default: break;
  }
}

}  // namespace

void table_transform(const Mat& xnum, const Mat& codes, const TableSpec& s, const Mat& out) {
  check_table_args(xnum, codes, s, out);
  for (int64_t j = 0; j < s.Fn; ++j) require(s.num_out[j] >= 0 && s.num_out[j] < s.W, "num_out out of range");
  for (int64_t i = 0; i < s.Fi; ++i)
    require(s.ind_out[i] >= 0 && s.ind_out[i] < s.W && s.ind_src[i] >= 0 && s.ind_src[i] < s.Fn, "indicator spec out of range");
  for (int64_t c = 0; c < s.Fc; ++c)
    require(s.cat_off[c] >= 0 && s.cat_off[c] + (s.cat_mode[c] == 1 ? 1 : s.cat_width[c]) <= s.W, "categorical block out of range");
  if (out.rows == 0) return;
  if (xnum.dtype == DType::f32) dispatch<float>(xnum, codes, s, out);
  else dispatch<double>(xnum, codes, s, out);
}

}  // namespace kf::cpu
