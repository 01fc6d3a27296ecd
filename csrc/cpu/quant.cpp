// Row-wise symmetric int8 quantization on the CPU: OpenMP over rows; each row's absmax scan and
// its rounding run in AVX-512, AVX2 or portable code picked by kf::cpu::isa() (forceable, so the
// tests run every path). Every path computes the bits of quant.h: round half to even comes from
// the FPU's default rounding mode (vcvtps2dq) or, portably, from the 1.5 * 2^23 trick, both exact
// for |v| <= 128, where the value is clamped first.
#include "cpu/quant.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/cpu_isa.h"
#include "common/half.h"

#ifdef KF_HAVE_X86_TARGETS
#include <immintrin.h>
#endif

namespace kf::cpu {
namespace {

template <typename T> inline float load(const T* p) { return static_cast<float>(*p); }
struct F16 { uint16_t b; };
struct BF16 { uint16_t b; };
template <> inline float load<F16>(const F16* p) { return half_bits_to_float(p->b); }
template <> inline float load<BF16>(const BF16* p) { return bf16_bits_to_float(p->b); }

// ---- per-row helpers, one per ISA ------------------------------------------------------------
// absmax(b [K]) of a row, and whether it holds NaN or +-inf.
// quantize(b [K], inv) -> q [K]: clamp(round_half_even(clamp(b * inv, -128, 128)), -127, 127); NaN -> 0.

inline int8_t q8(float v) {
  v = v < -128.f ? -128.f : (v > 128.f ? 128.f : v);  // NaN passes through both tests
  if (v != v) return 0;
  v = (v + 12582912.f) - 12582912.f;  // 1.5 * 2^23: exact round half to even for |v| < 2^22
  v = v < -127.f ? -127.f : (v > 127.f ? 127.f : v);
  return static_cast<int8_t>(v);
}

float absmax_portable(const float* b, int64_t K, bool* bad) {
  float amax = 0.f;
  bool nf = false;
  for (int64_t k = 0; k < K; ++k) {
    const float a = std::fabs(b[k]);
    nf |= !(a <= std::numeric_limits<float>::max());  // NaN or inf
    amax = a > amax ? a : amax;
  }
  *bad = nf;
  return amax;
}

void quantize_portable(const float* b, int64_t K, float inv, int8_t* q) {
  for (int64_t k = 0; k < K; ++k) q[k] = q8(b[k] * inv);
}

#ifdef KF_HAVE_X86_TARGETS
__attribute__((target("avx2,fma"))) float absmax_avx2(const float* b, int64_t K, bool* bad) {
  const __m256 sign = _mm256_set1_ps(-0.f), fmax = _mm256_set1_ps(std::numeric_limits<float>::max());
  __m256 m0 = _mm256_setzero_ps(), m1 = m0, nf = m0;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m256 a0 = _mm256_andnot_ps(sign, _mm256_loadu_ps(b + k));
    const __m256 a1 = _mm256_andnot_ps(sign, _mm256_loadu_ps(b + k + 8));
    // !(a <= max) is true for NaN and inf; max(a, m) keeps m when a is NaN (the flag catches it)
    nf = _mm256_or_ps(nf, _mm256_or_ps(_mm256_cmp_ps(a0, fmax, _CMP_NLE_UQ), _mm256_cmp_ps(a1, fmax, _CMP_NLE_UQ)));
    m0 = _mm256_max_ps(a0, m0);
    m1 = _mm256_max_ps(a1, m1);
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_max_ps(m0, m1));
  float amax = 0.f;
  for (float v : t) amax = v > amax ? v : amax;
  bool tail_bad = false;
  const float ta = absmax_portable(b + k, K - k, &tail_bad);
  *bad = tail_bad || _mm256_movemask_ps(nf) != 0;
  return ta > amax ? ta : amax;
}

__attribute__((target("avx2,fma"))) void quantize_avx2(const float* b, int64_t K, float inv, int8_t* q) {
  const __m256 vi = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.f), hi = _mm256_set1_ps(127.f);
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    __m256i r[4];
    for (int j = 0; j < 4; ++j) {
      __m256 v = _mm256_mul_ps(_mm256_loadu_ps(b + k + 8 * j), vi);
      // clamping to +-127 before rounding gives the same integers as rounding first (127 is an
      // integer); NaN: min/max return the second operand, so NaN becomes -127 here ...
      v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
      const __m256 ok = _mm256_cmp_ps(_mm256_loadu_ps(b + k + 8 * j), _mm256_loadu_ps(b + k + 8 * j), _CMP_ORD_Q);
      v = _mm256_and_ps(v, ok);  // ... and 0 after this mask (static scale: NaN -> 0)
      r[j] = _mm256_cvtps_epi32(v);  // default rounding mode: half to even
    }
    const __m256i p01 = _mm256_packs_epi32(r[0], r[1]), p23 = _mm256_packs_epi32(r[2], r[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);  // lanes interleaved by 128-bit halves: fix the order
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), p);
  }
  quantize_portable(b + k, K - k, inv, q + k);
}

__attribute__((target("avx512f,avx512bw"))) float absmax_avx512(const float* b, int64_t K, bool* bad) {
  const __m512 fmax = _mm512_set1_ps(std::numeric_limits<float>::max());
  __m512 m0 = _mm512_setzero_ps(), m1 = m0;
  __mmask16 nf = 0;
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512 a0 = _mm512_abs_ps(_mm512_loadu_ps(b + k)), a1 = _mm512_abs_ps(_mm512_loadu_ps(b + k + 16));
    nf |= _mm512_cmp_ps_mask(a0, fmax, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(a1, fmax, _CMP_NLE_UQ);
    m0 = _mm512_max_ps(a0, m0);
    m1 = _mm512_max_ps(a1, m1);
  }
  float amax = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
  bool tail_bad = false;
  const float ta = absmax_portable(b + k, K - k, &tail_bad);
  *bad = tail_bad || nf != 0;
  return ta > amax ? ta : amax;
}

__attribute__((target("avx512f,avx512bw"))) void quantize_avx512(const float* b, int64_t K, float inv, int8_t* q) {
  const __m512 vi = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.f), hi = _mm512_set1_ps(127.f);
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 x = _mm512_loadu_ps(b + k);
    __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x, vi), lo), hi);  // as in quantize_avx2
    v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), v);       // NaN -> 0
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
  }
  quantize_portable(b + k, K - k, inv, q + k);
}
#endif

struct RowOps {
  float (*absmax)(const float*, int64_t, bool*);
  void (*quantize)(const float*, int64_t, float, int8_t*);
};

RowOps row_ops() {
#ifdef KF_HAVE_X86_TARGETS
  switch (isa()) {
    case Isa::avx512: return {absmax_avx512, quantize_avx512};
    case Isa::avx2: return {absmax_avx2, quantize_avx2};
    default: break;
  }
#endif
  return {absmax_portable, quantize_portable};
}

// Pointer to row m as contiguous float32: the row itself (float32, unit stride) or buf filled.
template <typename T>
inline const float* row_f32(const Mat& x, int64_t m, float* buf) {
  const T* xr = static_cast<const T*>(x.data) + m * x.rs;
  if constexpr (std::is_same<T, float>::value)
    if (x.cs == 1) return xr;
  for (int64_t k = 0; k < x.cols; ++k) buf[k] = load<T>(xr + k * x.cs);
  return buf;
}

template <typename T>
void rows_impl(const Mat& x, const Mat& q, float* scale) {
  int8_t* qd = static_cast<int8_t*>(q.data);
  const int64_t M = x.rows, K = x.cols;
  const RowOps ops = row_ops();
#pragma omp parallel if (M * K > (1 << 16))  // small inputs: one thread beats starting a team
  {
    std::vector<float> buf(K);
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      const float* b = row_f32<T>(x, m, buf.data());
      bool bad = false;
      const float amax = ops.absmax(b, K, &bad);
      int8_t* qr = qd + m * q.rs;
      if (bad) {
        scale[m] = std::numeric_limits<float>::quiet_NaN();
        std::memset(qr, 0, K);
        continue;
      }
      const bool tiny = !(amax >= kQuantMinAbsmax);
      const float inv = tiny ? 1.f : 127.f / amax;
      scale[m] = tiny ? 1.f : amax / 127.f;
      ops.quantize(b, K, inv, qr);
    }
  }
}

template <typename T>
void static_impl(const Mat& x, float inv, const Mat& q) {
  int8_t* qd = static_cast<int8_t*>(q.data);
  const RowOps ops = row_ops();
#pragma omp parallel if (x.rows * x.cols > (1 << 16))
  {
    std::vector<float> buf(x.cols);
#pragma omp for schedule(static)
    for (int64_t m = 0; m < x.rows; ++m) ops.quantize(row_f32<T>(x, m, buf.data()), x.cols, inv, qd + m * q.rs);
  }
}

template <typename O>
void deq_impl(const Mat& q, const float* scale, const Mat& out) {
  const int8_t* qd = static_cast<const int8_t*>(q.data);
#pragma omp parallel for schedule(static) if (q.rows * q.cols > (1 << 16))
  for (int64_t m = 0; m < q.rows; ++m) {
    const int8_t* qr = qd + m * q.rs;
    const float s = scale[m];
    O* __restrict o = static_cast<O*>(out.data) + m * out.rs;
    for (int64_t k = 0; k < q.cols; ++k) {
      const float y = static_cast<float>(qr[k * q.cs]) * s;
      if constexpr (std::is_same<O, F16>::value) o[k].b = float_to_half_bits(y);
      else if constexpr (std::is_same<O, BF16>::value) o[k].b = float_to_bf16_bits(y);
      else o[k] = static_cast<O>(y);
    }
  }
}

void check_q(const Mat& x, const Mat& q) {
  require_dtype(x.dtype, {DType::f32, DType::f16, DType::bf16}, "x");
  require_dtype(q.dtype, {DType::i8}, "q");
  require(q.rows == x.rows && q.cols == x.cols, "q must have the shape of x");
  require(q.cs == 1 && q.rs >= q.cols, "q must have unit column stride");
  require_nonnull(x.data, x.rows * x.cols, "x");
  require_nonnull(q.data, q.rows * q.cols, "q");
}

}  // namespace

const char* quant_path() { return isa_name(isa()); }

void quantize_rows(const Mat& x, const Mat& q, float* scale) {
  check_q(x, q);
  require_nonnull(scale, x.rows, "scale");
  switch (x.dtype) {
    case DType::f32: return rows_impl<float>(x, q, scale);
    case DType::f16: return rows_impl<F16>(x, q, scale);
    default: return rows_impl<BF16>(x, q, scale);
  }
}

void quantize_static(const Mat& x, const float* scale, const Mat& q) {
  check_q(x, q);
  require_nonnull(scale, 1, "scale");
  require(*scale > 0.f && std::isfinite(*scale), "scale must be positive and finite");
  const float inv = 1.f / *scale;
  switch (x.dtype) {
    case DType::f32: return static_impl<float>(x, inv, q);
    case DType::f16: return static_impl<F16>(x, inv, q);
    default: return static_impl<BF16>(x, inv, q);
  }
}

void dequantize_rows(const Mat& q, const float* scale, const Mat& out) {
  require_dtype(q.dtype, {DType::i8}, "q");
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require(out.rows == q.rows && out.cols == q.cols, "out must have the shape of q");
  require(out.cs == 1 && out.rs >= out.cols, "out must have unit column stride");
  require_nonnull(q.data, q.rows * q.cols, "q");
  require_nonnull(scale, q.rows, "scale");
  switch (out.dtype) {
    case DType::f32: return deq_impl<float>(q, scale, out);
    case DType::f64: return deq_impl<double>(q, scale, out);
    case DType::f16: return deq_impl<F16>(q, scale, out);
    default: return deq_impl<BF16>(q, scale, out);
  }
}

}  // namespace kf::cpu
