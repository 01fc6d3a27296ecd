// fp32 SIMD for the norm and distill CPU kernels, one source for every ISA level.
//
// Arithmetic uses GCC/Clang vector extensions on the level's vector type L::V (8 floats for
// AVX-512 and AVX2, 4 for SSE2): generic always_inline code that the compiler lowers to the
// *calling* function's target. (One 16-float type for every level would have no register mode
// under AVX2 and live on the stack: 3x slower there.) The only level-specific code is the 16-bit <-> fp32 row conversion
// (F16C / AVX-512 intrinsics), in the Portable / Avx2 / Avx512 structs below.
//
// Calling rule: an OpenMP parallel region must be written inside the KF_TARGET_* function itself
// (GCC outlines the region from the function it is written in, with that function's target); the
// per-thread bodies are KF_INLINE templates on the level struct and are inlined into it.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/cpu_isa.h"
#include "common/half.h"
#include "common/simd.h"  // KF_INLINE

// The generic helpers take and return the level's vectors by value; they are always inlined into
// a function of that level's target, so GCC's note that such a signature would change the ABI of
// an out-of-line call does not apply. GCC 12 also reports the deliberately undefined upper halves
// inside its AVX-512 conversion intrinsics as maybe-uninitialized (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#if defined(KF_HAVE_X86_TARGETS)
#include <immintrin.h>
#endif

namespace kf::cpu::vec {

// V: the level's float vector type (Portable / Avx2 / Avx512 ::V, one native register wide, so no
// value round-trips through the stack); lanes<V> floats per vector.
template <class V>
constexpr int lanes = static_cast<int>(sizeof(V) / sizeof(float));
template <class V>
struct IntOf {
  typedef int32_t type __attribute__((vector_size(sizeof(V))));
};
template <class V>
using vi_t = typename IntOf<V>::type;
template <class V>
struct HalfOf {
  typedef float type __attribute__((vector_size(sizeof(V) / 2)));
};

template <class V>
KF_INLINE V loadu(const float* p) {  // p [lanes], any alignment
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
KF_INLINE void storeu(float* p, V v) {  // p [lanes], any alignment
  std::memcpy(p, &v, sizeof v);
}
template <class V>
KF_INLINE V splat(float s) { return V{} + s; }
template <class V>
KF_INLINE V vmax(V a, V b) { return a > b ? a : b; }  // NaN in a yields b: NaN is checked separately
KF_INLINE float vmax(float a, float b) { return a > b ? a : b; }

// Tree reduction by halves (extract + add per step) down to 4 lanes; every level's V has 4, 8 or 16.
template <class V>
KF_INLINE float hsum(V v) {
  static_assert(lanes<V> == 4 || lanes<V> == 8 || lanes<V> == 16, "4, 8 or 16 lanes");
  if constexpr (lanes<V> > 4) {
    using H = typename HalfOf<V>::type;
    H lo, hi;
    std::memcpy(&lo, &v, sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
    return hsum<H>(lo + hi);
  } else {
    return (v[0] + v[2]) + (v[1] + v[3]);
  }
}
template <class V>
KF_INLINE float hmax(V v) {
  float m = v[0];
  for (int i = 1; i < lanes<V>; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// Tags that let one generic lambda serve the vector loop (VT: one V) and the scalar tail (ST):
// f(tag, j) with ld(tag, p + j) / st(tag, p + j, v) inside.
template <class V>
struct VT {};
struct ST {};
template <class V>
KF_INLINE V ld(VT<V>, const float* p) { return loadu<V>(p); }
KF_INLINE float ld(ST, const float* p) { return *p; }
template <class V>
KF_INLINE void st(VT<V>, float* p, V v) { storeu(p, v); }
KF_INLINE void st(ST, float* p, float v) { *p = v; }

// f(tag, j) for every vector j = 0, lanes, ..., then every tail value.
template <class V, typename F>
KF_INLINE void for_each(int64_t n, F f) {
  int64_t j = 0;
  for (; j + lanes<V> <= n; j += lanes<V>) f(VT<V>{}, j);
  for (; j < n; ++j) f(ST{}, j);
}

// exp(x) to about 2 ulp over the whole float range (Cephes expf: 2^n * p(r), |r| <= ln2/2, the
// 2^n applied as two factors so that n in [-150, 128] neither overflows nor underflows the
// exponent field early): x < -103.97 gives 0, x > 88.72 gives inf, exp(-inf) = 0, NaN stays NaN.
// Rounding to n uses the 1.5 * 2^23 trick, exact without -ffast-math.
template <class V>
KF_INLINE V exp(V x) {
  using I = vi_t<V>;
  const V lo = splat<V>(-103.972084f), hi = splat<V>(88.7228391f);
  const V xc = x < lo ? lo : (x > hi ? hi : x);  // NaN passes through both compares
  const V magic = splat<V>(12582912.0f);
  const V n = (xc * 1.44269504088896341f + magic) - magic;
  V r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = splat<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const I ni = __builtin_convertvector(n, I);  // exact: n is integral
  const I n1 = ni >> 1, n2 = ni - n1;
  const I e1 = (n1 + 127) << 23, e2 = (n2 + 127) << 23;
  V f1, f2;
  std::memcpy(&f1, &e1, sizeof f1);
  std::memcpy(&f2, &e2, sizeof f2);
  V y = (p * f1) * f2;
  y = x < lo ? V{} : y;
  y = x > hi ? splat<V>(INFINITY) : y;
  return y;
}

KF_INLINE float exp(float x) { return std::exp(x); }  // the scalar tail's twin of exp(V)

// v where e != 0, else 0 (a product with a zero probability that must stay 0 against an infinite factor)
template <class V>
KF_INLINE V where_nonzero(V e, V v) { return e == 0.f ? V{} : v; }
KF_INLINE float where_nonzero(float e, float v) { return e == 0.f ? 0.f : v; }

// ----------------------------------------------------------------------------- per-level 16-bit rows
// widen_*: in [n] 16-bit bits -> out [n] fp32; narrow_*: in [n] fp32 -> out [n] 16-bit bits,
// round to nearest even, NaN kept quiet (as common/half.h, which handles the tails).

struct Portable {
  static constexpr const char* name = "portable";
  typedef float V __attribute__((vector_size(16)));  // SSE2 (baseline x86-64)
  static void widen_f16(const uint16_t* in, int64_t n, float* out) {
    for (int64_t j = 0; j < n; ++j) out[j] = half_bits_to_float(in[j]);
  }
  static void widen_bf16(const uint16_t* in, int64_t n, float* out) {
    for (int64_t j = 0; j < n; ++j) out[j] = bf16_bits_to_float(in[j]);
  }
  static void narrow_f16(const float* in, int64_t n, uint16_t* out) {
    for (int64_t j = 0; j < n; ++j) out[j] = float_to_half_bits(in[j]);
  }
  static void narrow_bf16(const float* in, int64_t n, uint16_t* out) {
    for (int64_t j = 0; j < n; ++j) out[j] = float_to_bf16_bits(in[j]);
  }
};

#if defined(KF_HAVE_X86_TARGETS)
struct Avx2 {
  static constexpr const char* name = "avx2";
  typedef float V __attribute__((vector_size(32)));
  KF_TARGET_AVX2 static void widen_f16(const uint16_t* in, int64_t n, float* out) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
      _mm256_storeu_ps(out + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + j))));
    for (; j < n; ++j) out[j] = half_bits_to_float(in[j]);
  }
  KF_TARGET_AVX2 static void widen_bf16(const uint16_t* in, int64_t n, float* out) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + j)));
      _mm256_storeu_ps(out + j, _mm256_castsi256_ps(_mm256_slli_epi32(u, 16)));
    }
    for (; j < n; ++j) out[j] = bf16_bits_to_float(in[j]);
  }
  KF_TARGET_AVX2 static void narrow_f16(const float* in, int64_t n, uint16_t* out) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j),
                       _mm256_cvtps_ph(_mm256_loadu_ps(in + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; j < n; ++j) out[j] = float_to_half_bits(in[j]);
  }
  KF_TARGET_AVX2 static void narrow_bf16(const float* in, int64_t n, uint16_t* out) {
    int64_t j = 0;
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), qnan = _mm256_set1_epi32(0x40);
    for (; j + 8 <= n; j += 8) {
      const __m256 v = _mm256_loadu_ps(in + j);
      const __m256i u = _mm256_castps_si256(v);
      const __m256i hi = _mm256_srli_epi32(u, 16);
      __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(hi, one)), 16);
      const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, qnan), nan);
      const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xd8);  // values <= 0xffff
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm256_castsi256_si128(packed));
    }
    for (; j < n; ++j) out[j] = float_to_bf16_bits(in[j]);
  }
};

struct Avx512 {
  static constexpr const char* name = "avx512";
  // 8-float vectors with the AVX-512 (VL) instruction set: measured on this Xeon, 16-float ones
  // ran the distill kernel 1.3x slower (26 vs 33 ms, 2048 x 1000, one thread) and the norm
  // kernels no faster (memory-bound); the 16-bit row conversions below use full zmm width.
  typedef float V __attribute__((vector_size(32)));
  KF_TARGET_AVX512 static void widen_f16(const uint16_t* in, int64_t n, float* out) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
      _mm512_storeu_ps(out + j, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + j))));
    for (; j < n; ++j) out[j] = half_bits_to_float(in[j]);
  }
  KF_TARGET_AVX512 static void widen_bf16(const uint16_t* in, int64_t n, float* out) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
      const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + j)));
      _mm512_storeu_ps(out + j, _mm512_castsi512_ps(_mm512_slli_epi32(u, 16)));
    }
    for (; j < n; ++j) out[j] = bf16_bits_to_float(in[j]);
  }
  KF_TARGET_AVX512 static void narrow_f16(const float* in, int64_t n, uint16_t* out) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j),
                          _mm512_cvtps_ph(_mm512_loadu_ps(in + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; j < n; ++j) out[j] = float_to_half_bits(in[j]);
  }
  KF_TARGET_AVX512 static void narrow_bf16(const float* in, int64_t n, uint16_t* out) {
    int64_t j = 0;
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), qnan = _mm512_set1_epi32(0x40);
    for (; j + 16 <= n; j += 16) {
      const __m512 v = _mm512_loadu_ps(in + j);
      const __m512i u = _mm512_castps_si512(v);
      const __m512i hi = _mm512_srli_epi32(u, 16);
      __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(hi, one)), 16);
      r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_or_si512(hi, qnan));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), _mm512_cvtepi32_epi16(r));
    }
    for (; j < n; ++j) out[j] = float_to_bf16_bits(in[j]);
  }
};
#else
using Avx2 = Portable;
using Avx512 = Portable;
#endif

}  // namespace kf::cpu::vec

#pragma GCC diagnostic pop
