// AVX2 and AVX-512 micro-kernels of the int8 GEMMs over the packed layout of int8_pack.h. Each is
// compiled for its ISA with a target attribute and only called after int8_path_supported() said
// the CPU has it, so the library itself stays baseline x86-64.
#include "cpu/int8_pack.h"

#include <cstring>
#include <stdexcept>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define KF_X86 1
#define KF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define KF_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace kf::cpu {

bool int8_path_supported(Int8Path p) {
  switch (p) {
    case Int8Path::portable: return true;
#ifdef KF_X86
    case Int8Path::avx2: {
      static const bool v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
      return v;
    }
    case Int8Path::avx512: {
      static const bool v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512vnni");
      return v;
    }
#endif
    default: return false;
  }
}

#ifdef KF_X86

// ---- W8A8, AVX512-VNNI ---------------------------------------------------------------------
// vpdpbusd multiplies unsigned by signed bytes: x arrives biased to u8 (x + 128) and the caller
// subtracts 128 * colsum. int32 wraps modulo 2^32 and the true sum fits (K <= 131071), so the
// corrected result is exact even if the biased partial sums wrap.
template <int MR, int NP>
KF_AVX512 static void w8a8_avx512_t(const uint8_t* x, int64_t ld, const int8_t* panel, int64_t K4, int32_t* c) {
  __m512i acc[MR][NP];
  for (int i = 0; i < MR; ++i)
    for (int p = 0; p < NP; ++p) acc[i][p] = _mm512_setzero_si512();
  const int64_t pstride = K4 * 64;
  for (int64_t k4 = 0; k4 < K4; ++k4) {
    __m512i b[NP];
    for (int p = 0; p < NP; ++p) b[p] = _mm512_loadu_si512(panel + p * pstride + k4 * 64);
    for (int i = 0; i < MR; ++i) {
      int32_t v;
      std::memcpy(&v, x + i * ld + 4 * k4, 4);
      const __m512i a = _mm512_set1_epi32(v);
      for (int p = 0; p < NP; ++p) acc[i][p] = _mm512_dpbusd_epi32(acc[i][p], a, b[p]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int p = 0; p < NP; ++p) _mm512_storeu_si512(c + i * NP * 16 + p * 16, acc[i][p]);
}

void w8a8_avx512(const uint8_t* x, int64_t ld, int mr, const int8_t* panel, int np, int64_t K4, int32_t* c) {
#define KF_CASE(R)                                                   \
  case R:                                                            \
    if (np == 2) w8a8_avx512_t<R, 2>(x, ld, panel, K4, c);           \
    else w8a8_avx512_t<R, 1>(x, ld, panel, K4, c);                   \
    return;
  switch (mr) { KF_CASE(1) KF_CASE(2) KF_CASE(3) KF_CASE(4) KF_CASE(5) KF_CASE(6) KF_CASE(7) KF_CASE(8) }
#undef KF_CASE
  throw std::logic_error("w8a8_avx512: mr must be 1..8");
}

// ---- W8A8, AVX2 (int16 widening) --------------------------------------------------------------
// 16 bytes of a panel row (4 columns x 4 k) widen to 16 int16; x[4 k4 .. 4 k4 + 3] as int16 is
// broadcast to every 64-bit lane; vpmaddwd gives per column two int32 partial sums (k 0+1, k 2+3),
// each at most 2 * 2^14 in magnitude, so nothing saturates. The pairs are added once at the end.
template <int MR>
KF_AVX2 static void w8a8_avx2_t(const int16_t* x, int64_t ld, const int8_t* panel, int64_t K4, int32_t* c) {
  __m256i acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int g = 0; g < 4; ++g) acc[i][g] = _mm256_setzero_si256();
  for (int64_t k4 = 0; k4 < K4; ++k4) {
    __m256i a[MR];
    for (int i = 0; i < MR; ++i) {
      int64_t v;
      std::memcpy(&v, x + i * ld + 4 * k4, 8);
      a[i] = _mm256_set1_epi64x(v);
    }
    for (int g = 0; g < 4; ++g) {
      const __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(panel + k4 * 64 + g * 16)));
      for (int i = 0; i < MR; ++i) acc[i][g] = _mm256_add_epi32(acc[i][g], _mm256_madd_epi16(b, a[i]));
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int g = 0; g < 4; ++g) {
      alignas(32) int32_t t[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(t), acc[i][g]);
      for (int j = 0; j < 4; ++j) c[i * 16 + g * 4 + j] = t[2 * j] + t[2 * j + 1];
    }
}

void w8a8_avx2(const int16_t* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, int32_t* c) {
  if (mr == 2) return w8a8_avx2_t<2>(x, ld, panel, K4, c);
  if (mr == 1) return w8a8_avx2_t<1>(x, ld, panel, K4, c);
  throw std::logic_error("w8a8_avx2: mr must be 1..2");
}

// ---- weight-only, fp32 FMA --------------------------------------------------------------------
// 16 bytes of a panel row (4 columns x 4 k) become 16 floats; x[4 k4 .. 4 k4 + 3] is broadcast to
// every 128-bit lane, so lane 4 j + t accumulates column j's products with k = t (mod 4); the four
// partial sums of each column are added once at the end (fp32 throughout).
template <int MR>
KF_AVX512 static void wo_avx512_t(const float* x, int64_t ld, const int8_t* panel, int64_t K4, float* c) {
  __m512 acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int g = 0; g < 4; ++g) acc[i][g] = _mm512_setzero_ps();
  for (int64_t k4 = 0; k4 < K4; ++k4) {
    __m512 a[MR];
    for (int i = 0; i < MR; ++i) a[i] = _mm512_broadcast_f32x4(_mm_loadu_ps(x + i * ld + 4 * k4));
    for (int g = 0; g < 4; ++g) {
      const __m512 b = _mm512_cvtepi32_ps(
          _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(panel + k4 * 64 + g * 16))));
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

void wo_avx512(const float* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, float* c) {
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

// 8 bytes (2 columns x 4 k) become 8 floats; x[4 k4 ..] broadcast to both 128-bit lanes.
template <int MR>
KF_AVX2 static void wo_avx2_t(const float* x, int64_t ld, const int8_t* panel, int half, int64_t K4, float* c) {
  __m256 acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int g = 0; g < 4; ++g) acc[i][g] = _mm256_setzero_ps();
  const int8_t* p = panel + half * 32;
  for (int64_t k4 = 0; k4 < K4; ++k4) {
    __m256 a[MR];
    for (int i = 0; i < MR; ++i) a[i] = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(x + i * ld + 4 * k4));
    for (int g = 0; g < 4; ++g) {
      const __m256 b = _mm256_cvtepi32_ps(
          _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + k4 * 64 + g * 8))));
      for (int i = 0; i < MR; ++i) acc[i][g] = _mm256_fmadd_ps(b, a[i], acc[i][g]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int g = 0; g < 4; ++g) {
      alignas(32) float t[8];
      _mm256_store_ps(t, acc[i][g]);
      for (int j = 0; j < 2; ++j) c[i * 8 + g * 2 + j] = (t[4 * j] + t[4 * j + 1]) + (t[4 * j + 2] + t[4 * j + 3]);
    }
}

void wo_avx2(const float* x, int64_t ld, int mr, const int8_t* panel, int half, int64_t K4, float* c) {
  switch (mr) {
    case 1: return wo_avx2_t<1>(x, ld, panel, half, K4, c);
    case 2: return wo_avx2_t<2>(x, ld, panel, half, K4, c);
    case 3: return wo_avx2_t<3>(x, ld, panel, half, K4, c);
  }
  throw std::logic_error("wo_avx2: mr must be 1..3");
}

#else  // not x86-64 GCC: these paths are never supported, so never called

void w8a8_avx512(const uint8_t*, int64_t, int, const int8_t*, int, int64_t, int32_t*) {
  throw std::logic_error("avx512 int8 path not compiled");
}
void w8a8_avx2(const int16_t*, int64_t, int, const int8_t*, int64_t, int32_t*) {
  throw std::logic_error("avx2 int8 path not compiled");
}
void wo_avx512(const float*, int64_t, int, const int8_t*, int64_t, float*) {
  throw std::logic_error("avx512 int8 path not compiled");
}
void wo_avx2(const float*, int64_t, int, const int8_t*, int, int64_t, float*) {
  throw std::logic_error("avx2 int8 path not compiled");
}

#endif

}  // namespace kf::cpu
