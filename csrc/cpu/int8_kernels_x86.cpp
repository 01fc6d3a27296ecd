// AVX2 and AVX-512 micro-kernels and epilogues of the int8 GEMMs (contracts in int8_kernels.h)
// over the packed layout of int8_pack.h. Each is compiled for its ISA with a target attribute and
// only called after int8_path_supported() said the CPU has it, so the library stays baseline x86-64.
#include "cpu/int8_kernels.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define KF_X86 1
#define KF_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))
#define KF_AVX2 __attribute__((target("avx2,fma")))
// The epilogues must not fuse multiply and add (the reference rounds each step): AVX2 code without
// "fma" in its target cannot contract; the AVX-512 one uses the explicit-rounding intrinsics, which
// GCC never contracts.
#define KF_AVX2_NOFMA __attribute__((target("avx2")))
#endif

namespace kf::cpu {

#ifdef KF_X86

// ---- W8A8, AVX512-VNNI ---------------------------------------------------------------------
// vpdpbusd multiplies unsigned by signed bytes: x arrives biased to u8 (x + 128) and the caller
// subtracts 128 * colsum. int32 wraps modulo 2^32 and the true sum fits (K <= 131071), so the
// corrected result is exact even if the biased partial sums wrap. vpdpbusd accumulates in place
// (a 4-5 cycle chain per register): the tile is up to 6 rows x 4 panels, 24 independent chains
// + 4 panel rows + 1 broadcast = 29 of the 32 zmm registers; each 64-byte panel row loaded serves
// 6 rows and each x broadcast 4 panels.
// How far ahead (in 64-byte panel rows, i.e. cache lines) the kernels that stream the int8 panels
// once (few rows) prefetch them: measured at K = N = 4096, M = 1, 1 thread, W not in cache,
// weight-only 3.5 ms -> 2.0-2.3 ms with 32 rows.
constexpr int64_t kPrefetchRows = 32;

// acc += a . b in the accumulator's own register. GCC 12 compiles _mm512_dpbusd_epi32 on an array
// of accumulators into a copy to a scratch register, the vpdpbusd and a copy back (and spills):
// 3 instructions per multiply, which starves the vector units. Measured on one AMD EPYC (Zen 5)
// core, K = N = 4096, 120 rows: 8 x 2 tile 414 GOP/s with the intrinsic, 703 with this; 6 x 4 760.
KF_AVX512 static inline void dpbusd_acc(__m512i& acc, __m512i a, __m512i b) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}

template <int MR, int NP>
KF_AVX512 static void w8a8_avx512_t(const uint8_t* x, int64_t ld, const int8_t* panel, int64_t K4, int32_t* c) {
  // every loop over rows and panels unrolled, so the accumulator array becomes registers (without
  // the pragmas the LTO build keeps it on the stack: a load and a store around each vpdpbusd)
  __m512i acc[MR][NP];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) acc[i][p] = _mm512_setzero_si512();
  const int64_t pstride = K4 * 64;
  for (int64_t k4 = 0; k4 < K4; ++k4) {
    __m512i b[NP];
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) {
      // GEMV rows stream W once: fetch ahead of the demand loads (as in wo_avx512_t)
      if constexpr (MR <= 4) _mm_prefetch(reinterpret_cast<const char*>(panel + p * pstride + (k4 + kPrefetchRows) * 64), _MM_HINT_T0);
      b[p] = _mm512_loadu_si512(panel + p * pstride + k4 * 64);
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      int32_t v;
      std::memcpy(&v, x + i * ld + 4 * k4, 4);
      const __m512i a = _mm512_set1_epi32(v);
#pragma GCC unroll 4
      for (int p = 0; p < NP; ++p) dpbusd_acc(acc[i][p], a, b[p]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) _mm512_storeu_si512(c + i * NP * 16 + p * 16, acc[i][p]);
}

void w8a8_avx512(const uint8_t* x, int64_t ld, int mr, const int8_t* panel, int np, int64_t K4, int32_t* c) {
#define KF_CASE(R)                                                   \
  case R:                                                            \
    switch (np) {                                                    \
      case 4: return w8a8_avx512_t<R, 4>(x, ld, panel, K4, c);       \
      case 3: return w8a8_avx512_t<R, 3>(x, ld, panel, K4, c);       \
      case 2: return w8a8_avx512_t<R, 2>(x, ld, panel, K4, c);       \
      case 1: return w8a8_avx512_t<R, 1>(x, ld, panel, K4, c);       \
    }                                                                \
    break;
  switch (mr) { KF_CASE(1) KF_CASE(2) KF_CASE(3) KF_CASE(4) KF_CASE(5) KF_CASE(6) }
#undef KF_CASE
  throw std::logic_error("w8a8_avx512: mr 1..6 with np 1..4");
}

// ---- weight-only as three exact W8A8 products (x in 24-bit fixed point) ---------------------------
// Row m of x becomes X = round(x * 2^e) with 2^e the power of two that puts max |x_m| just under
// 2^23, then U = X + 2^23 in [0, 2^24) splits into three u8 digits: out rows 3m + j hold digit j
// (U >> 8 j & 255). vpdpbusd on a digit row gives A_j = sum_k digit * w exactly (|A_j| <= Kp * 255
// * 128 < 2^31 for Kp <= 65536), and sum_k X w = 2^16 A_2 + 2^8 A_1 + A_0 - 2^23 colsum, exact in
// int64. Scaling is by a power of two in float64 (exact), rounding to nearest even once per
// element. A row with a NaN or an infinity has no fixed point: the function returns false and the
// caller runs the fp32 kernels instead.
// d[j]: digit row j; element k at d[j] + (k / 64) * cs + k % 64 (cs = 64: plain rows; 1024: rows
// of AMX A tiles).
KF_AVX512 static bool wo_digits_row(const float* x, int64_t Kp, uint8_t* const d[3], int64_t cs, double* inv) {
  __m512 mx = _mm512_setzero_ps();
  __mmask16 bad = 0;
  for (int64_t k = 0; k < Kp; k += 16) {
    const __m512 v = _mm512_loadu_ps(x + k);
    bad |= _mm512_fpclass_ps_mask(v, 0x99);  // QNaN | +inf | -inf | SNaN
    mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
  }
  if (bad) return false;
  const float m = _mm512_reduce_max_ps(mx);
  int ex = 0;
  if (m > 0.f) std::frexp(m, &ex);  // m < 2^ex
  const __m512d s = _mm512_set1_pd(std::ldexp(1.0, 23 - ex));
  *inv = std::ldexp(1.0, ex - 23);
  const __m512i hi = _mm512_set1_epi32((1 << 23) - 1), bias = _mm512_set1_epi32(1 << 23);
  for (int64_t k = 0; k < Kp; k += 16) {
    const __m512 v = _mm512_loadu_ps(x + k);
    // |x| 2^e < 2^23, so X >= -2^23 and only the top can round out of range (to 2^23): clamped
    // there (an error of 1/2 either way)
    const __m256i a = _mm512_cvtpd_epi32(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), s));
    const __m256i b = _mm512_cvtpd_epi32(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)), s));
    const __m512i U = _mm512_add_epi32(_mm512_min_epi32(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1), hi), bias);
    // vpmovdb keeps the low byte of each lane: the digit after the shift
    const int64_t o = (k / 64) * cs + k % 64;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d[0] + o), _mm512_cvtepi32_epi8(U));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d[1] + o), _mm512_cvtepi32_epi8(_mm512_srli_epi32(U, 8)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d[2] + o), _mm512_cvtepi32_epi8(_mm512_srli_epi32(U, 16)));
  }
  return true;
}

bool wo_digits_avx512(const float* x, int64_t rows, int64_t Kp, bool tiles, uint8_t* out, double* inv_scale) {
  bool ok = true;
#pragma omp parallel for schedule(static) reduction(&& : ok) if (rows * Kp > (1 << 18))
  for (int64_t m = 0; m < rows; ++m) {
    uint8_t* d[3];
    for (int j = 0; j < 3; ++j) {
      const int64_t r = 3 * m + j;  // digit row
      d[j] = tiles ? out + (r / 16) * 16 * Kp + (r % 16) * 64 : out + r * Kp;
    }
    ok = wo_digits_row(x + m * Kp, Kp, d, tiles ? 1024 : 64, inv_scale + m) && ok;
  }
  return ok;
}

// ---- W8A8, AVX2 (int16 widening) --------------------------------------------------------------
// 16 bytes of a panel row (4 columns x 4 k) widen to 16 int16; x[4 k4 .. 4 k4 + 3] as int16 is
// broadcast to every 64-bit lane; vpmaddwd gives per column two int32 partial sums (k 0+1, k 2+3),
// each at most 2 * 2^14 in magnitude, so nothing saturates (-128 included, unlike vpmaddubsw, whose
// int16 pair sums saturate for u8 x s8). The tile is 8 columns (half a panel, 2 groups) x MR <= 4
// rows: 8 accumulators + 2 widened groups + 2 temporaries fit the 16 ymm registers with room (at 6
// rows GCC spills). The x broadcast is a load-port uop, so per k4 the ALU runs 2 widenings +
// 2 MR (vpmaddwd + vpaddd).
template <int MR, int G>
KF_AVX2 static void w8a8_avx2_t(const int16_t* x, int64_t ld, const int8_t* panel, int half, int64_t K4, int32_t* c) {
  __m256i acc[MR][G];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) acc[i][g] = _mm256_setzero_si256();
  const int8_t* p = panel + half * 32;
  for (int64_t k4 = 0; k4 < K4; ++k4) {
    if constexpr (MR <= 2) _mm_prefetch(reinterpret_cast<const char*>(panel + (k4 + kPrefetchRows) * 64), _MM_HINT_T0);
    __m256i b[G];
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g)
      b[g] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k4 * 64 + g * 16)));
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      int64_t v;
      std::memcpy(&v, x + i * ld + 4 * k4, 8);
      const __m256i a = _mm256_set1_epi64x(v);
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) acc[i][g] = _mm256_add_epi32(acc[i][g], _mm256_madd_epi16(b[g], a));
    }
  }
  // acc[i][g] lanes: (column 4 g + j, k pair t) at 2 j + t. Plain stores first (so the
  // accumulators stay in registers through the loop), then the pairs are added.
  alignas(32) int32_t t[MR * G * 8];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) _mm256_store_si256(reinterpret_cast<__m256i*>(t + (i * G + g) * 8), acc[i][g]);
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 4 * G; ++j) c[i * 4 * G + j] = t[i * G * 8 + 2 * j] + t[i * G * 8 + 2 * j + 1];
}

void w8a8_avx2(const int16_t* x, int64_t ld, int mr, const int8_t* panel, int half, int64_t K4, int32_t* c) {
  if (half < 0) {  // the whole panel: 16 columns, few rows (the GEMV reads each panel once)
    if (mr == 1) return w8a8_avx2_t<1, 4>(x, ld, panel, 0, K4, c);
    if (mr == 2) return w8a8_avx2_t<2, 4>(x, ld, panel, 0, K4, c);
    throw std::logic_error("w8a8_avx2: mr must be 1..2 for the whole panel");
  }
  switch (mr) {
    case 1: return w8a8_avx2_t<1, 2>(x, ld, panel, half, K4, c);
    case 2: return w8a8_avx2_t<2, 2>(x, ld, panel, half, K4, c);
    case 3: return w8a8_avx2_t<3, 2>(x, ld, panel, half, K4, c);
    case 4: return w8a8_avx2_t<4, 2>(x, ld, panel, half, K4, c);
  }
  throw std::logic_error("w8a8_avx2: mr must be 1..4");
}

// ---- weight-only, fp32 FMA --------------------------------------------------------------------
// 16 values of a panel row (4 columns x 4 k) as 16 floats (converted from int8 here, or read from
// the fp32 copy of the panel); x[4 k4 .. 4 k4 + 3] is broadcast to every 128-bit lane, so lane
// 4 j + t accumulates column j's products with k = t (mod 4); the four partial sums of each column
// are added once at the end (fp32 throughout).
template <typename B>
KF_AVX512 static inline __m512 wo_b512(const B* panel, int64_t off) {
  if constexpr (sizeof(B) == 1)
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(panel + off))));
  else
    return _mm512_loadu_ps(panel + off);
}

template <int MR, typename B>
KF_AVX512 static void wo_avx512_t(const float* x, int64_t ld, const B* panel, int64_t K4, float* c) {
  __m512 acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int g = 0; g < 4; ++g) acc[i][g] = _mm512_setzero_ps();
  for (int64_t k4 = 0; k4 < K4; ++k4) {
    // the int8 stream (W read once for few rows, at memory speed only if it arrives ahead of the
    // conversion work): one line, kPrefetchRows rows ahead (a prefetch past the end never faults)
    if constexpr (sizeof(B) == 1) _mm_prefetch(reinterpret_cast<const char*>(panel + (k4 + kPrefetchRows) * 64), _MM_HINT_T0);
    __m512 a[MR];
    for (int i = 0; i < MR; ++i) a[i] = _mm512_broadcast_f32x4(_mm_loadu_ps(x + i * ld + 4 * k4));
    for (int g = 0; g < 4; ++g) {
      const __m512 b = wo_b512(panel, k4 * 64 + g * 16);
      for (int i = 0; i < MR; ++i) acc[i][g] = _mm512_fmadd_ps(b, a[i], acc[i][g]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int g = 0; g < 4; ++g) {
      alignas(64) float t[16];
      _mm512_store_ps(t, acc[i][g]);
      for (int j = 0; j < 4; ++j) c[i * 16 + g * 4 + j] = (t[4 * j] + t[4 * j + 1]) + (t[4 * j + 2] + t[4 * j + 3]);
    }
}

template <typename B>
static void wo_avx512_any(const float* x, int64_t ld, int mr, const B* panel, int64_t K4, float* c) {
  switch (mr) {
    case 1: return wo_avx512_t<1>(x, ld, panel, K4, c);
    case 2: return wo_avx512_t<2>(x, ld, panel, K4, c);
    case 3: return wo_avx512_t<3>(x, ld, panel, K4, c);
    case 4: return wo_avx512_t<4>(x, ld, panel, K4, c);
    case 5: return wo_avx512_t<5>(x, ld, panel, K4, c);
    case 6: return wo_avx512_t<6>(x, ld, panel, K4, c);
  }
  throw std::logic_error("wo_avx512: mr must be 1..6");
}

void wo_avx512(const float* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, float* c) {
  wo_avx512_any(x, ld, mr, panel, K4, c);
}
void wo_avx512_f32(const float* x, int64_t ld, int mr, const float* panel, int64_t K4, float* c) {
  wo_avx512_any(x, ld, mr, panel, K4, c);
}

// AVX2: 8 values (2 columns x 4 k) per group, 4 groups = the 8 columns of half a panel; x[4 k4 ..]
// broadcast to both 128-bit lanes. MR <= 3: 12 accumulators + 3 broadcasts + 1 group.
template <typename B>
KF_AVX2 static inline __m256 wo_b256(const B* p, int64_t off) {
  if constexpr (sizeof(B) == 1)
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + off))));
  else
    return _mm256_loadu_ps(p + off);
}

template <int MR, typename B>
KF_AVX2 static void wo_avx2_t(const float* x, int64_t ld, const B* panel, int half, int64_t K4, float* c) {
  __m256 acc[MR][4];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) acc[i][g] = _mm256_setzero_ps();
  const B* p = panel + half * 32;
  for (int64_t k4 = 0; k4 < K4; ++k4) {
    if constexpr (sizeof(B) == 1) _mm_prefetch(reinterpret_cast<const char*>(panel + (k4 + kPrefetchRows) * 64), _MM_HINT_T0);
    __m256 a[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) a[i] = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(x + i * ld + 4 * k4));
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
      const __m256 b = wo_b256(p, k4 * 64 + g * 8);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) acc[i][g] = _mm256_fmadd_ps(b, a[i], acc[i][g]);
    }
  }
  alignas(32) float t[MR * 32];  // plain stores first: the accumulators stay in registers in the loop
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) _mm256_store_ps(t + (i * 4 + g) * 8, acc[i][g]);
  for (int i = 0; i < MR; ++i)
    for (int g = 0; g < 4; ++g)
      for (int j = 0; j < 2; ++j) {
        const float* u = t + (i * 4 + g) * 8 + 4 * j;
        c[i * 8 + g * 2 + j] = (u[0] + u[1]) + (u[2] + u[3]);
      }
}

template <typename B>
static void wo_avx2_any(const float* x, int64_t ld, int mr, const B* panel, int half, int64_t K4, float* c) {
  switch (mr) {
    case 1: return wo_avx2_t<1>(x, ld, panel, half, K4, c);
    case 2: return wo_avx2_t<2>(x, ld, panel, half, K4, c);
    case 3: return wo_avx2_t<3>(x, ld, panel, half, K4, c);
  }
  throw std::logic_error("wo_avx2: mr must be 1..3");
}

void wo_avx2(const float* x, int64_t ld, int mr, const int8_t* panel, int half, int64_t K4, float* c) {
  wo_avx2_any(x, ld, mr, panel, half, K4, c);
}
void wo_avx2_f32(const float* x, int64_t ld, int mr, const float* panel, int half, int64_t K4, float* c) {
  wo_avx2_any(x, ld, mr, panel, half, K4, c);
}

KF_AVX512 static void dequant_avx512(const int8_t* p, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16)  // n is a multiple of 64
    _mm512_storeu_ps(out + i, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)))));
}
KF_AVX2 static void dequant_avx2(const int8_t* p, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + i)))));
}

void wo_dequant_panel(const int8_t* panel, int64_t K4, float* out, int avx) {
  if (avx == 512) return dequant_avx512(panel, K4 * 64, out);
  if (avx == 2) return dequant_avx2(panel, K4 * 64, out);
  for (int64_t i = 0; i < K4 * 64; ++i) out[i] = static_cast<float>(panel[i]);
}

// ---- epilogues (float32 out) ------------------------------------------------------------------

static inline float gelu(float v) { return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f)); }

static inline void gelu_inplace(float* y, int64_t nv) {
  for (int64_t j = 0; j < nv; ++j) y[j] = gelu(y[j]);
}

// v = (float(c) * r) * cs (+ bias), relu: v < 0 ? 0 : v (a NaN compares false and stays).
template <bool I32>
KF_AVX512 static void epi_avx512(const void* cv, int64_t nv, const EpiArgs& a, float* y) {
  constexpr int R = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512 r = _mm512_set1_ps(a.r), zero = _mm512_setzero_ps();
  for (int64_t j = 0; j < nv; j += 16) {
    const __mmask16 m = nv - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (nv - j)) - 1u);
    __m512 v;
    if constexpr (I32) {
      v = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, static_cast<const int32_t*>(cv) + j));
      v = _mm512_mul_round_ps(v, r, R);
    } else {
      v = _mm512_maskz_loadu_ps(m, static_cast<const float*>(cv) + j);
    }
    v = _mm512_mul_round_ps(v, _mm512_maskz_loadu_ps(m, a.cs + j), R);
    if (a.bias) v = _mm512_add_round_ps(v, _mm512_maskz_loadu_ps(m, a.bias + j), R);
    if (a.act == 1) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
    _mm512_mask_storeu_ps(y + j, m, v);
  }
  if (a.act == 2) gelu_inplace(y, nv);
}

template <bool I32>
KF_AVX2_NOFMA static void epi_avx2(const void* cv, int64_t nv, const EpiArgs& a, float* y) {
  const __m256 r = _mm256_set1_ps(a.r), zero = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= nv; j += 8) {
    __m256 v;
    if constexpr (I32) {
      v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const int32_t*>(cv) + j))), r);
    } else {
      v = _mm256_loadu_ps(static_cast<const float*>(cv) + j);
    }
    v = _mm256_mul_ps(v, _mm256_loadu_ps(a.cs + j));
    if (a.bias) v = _mm256_add_ps(v, _mm256_loadu_ps(a.bias + j));
    if (a.act == 1) v = _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
    _mm256_storeu_ps(y + j, v);
  }
  for (; j < nv; ++j) {  // the tail, same formula in scalar fp32 (no FMA in this target)
    float v = I32 ? static_cast<float>(static_cast<const int32_t*>(cv)[j]) * a.r : static_cast<const float*>(cv)[j];
    v = v * a.cs[j];
    if (a.bias) v = v + a.bias[j];
    if (a.act == 1) v = v < 0.f ? 0.f : v;
    y[j] = v;
  }
  if (a.act == 2) gelu_inplace(y, nv);
}

void epilogue_i32_avx512(const int32_t* c, int64_t nv, const EpiArgs& a, float* y) { epi_avx512<true>(c, nv, a, y); }
void epilogue_f32_avx512(const float* c, int64_t nv, const EpiArgs& a, float* y) { epi_avx512<false>(c, nv, a, y); }
void epilogue_i32_avx2(const int32_t* c, int64_t nv, const EpiArgs& a, float* y) { epi_avx2<true>(c, nv, a, y); }
void epilogue_f32_avx2(const float* c, int64_t nv, const EpiArgs& a, float* y) { epi_avx2<false>(c, nv, a, y); }

#else  // not x86-64 GCC: these paths are never supported (int8_path_supported), so never called

[[noreturn]] static void no_x86() { throw std::logic_error("x86 int8 paths not compiled"); }
void w8a8_avx512(const uint8_t*, int64_t, int, const int8_t*, int, int64_t, int32_t*) { no_x86(); }
void w8a8_avx2(const int16_t*, int64_t, int, const int8_t*, int, int64_t, int32_t*) { no_x86(); }
void wo_avx512(const float*, int64_t, int, const int8_t*, int64_t, float*) { no_x86(); }
bool wo_digits_avx512(const float*, int64_t, int64_t, bool, uint8_t*, double*) { no_x86(); }
void wo_avx512_f32(const float*, int64_t, int, const float*, int64_t, float*) { no_x86(); }
void wo_avx2(const float*, int64_t, int, const int8_t*, int, int64_t, float*) { no_x86(); }
void wo_avx2_f32(const float*, int64_t, int, const float*, int, int64_t, float*) { no_x86(); }
void wo_dequant_panel(const int8_t* panel, int64_t K4, float* out, int) {
  for (int64_t i = 0; i < K4 * 64; ++i) out[i] = static_cast<float>(panel[i]);
}
void epilogue_i32_avx512(const int32_t*, int64_t, const EpiArgs&, float*) { no_x86(); }
void epilogue_f32_avx512(const float*, int64_t, const EpiArgs&, float*) { no_x86(); }
void epilogue_i32_avx2(const int32_t*, int64_t, const EpiArgs&, float*) { no_x86(); }
void epilogue_f32_avx2(const float*, int64_t, const EpiArgs&, float*) { no_x86(); }

#endif

}  // namespace kf::cpu
