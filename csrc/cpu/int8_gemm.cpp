// int8 GEMMs on the CPU. W8A8, exact int32 accumulation, three paths chosen at run time:
//  * AVX512-VNNI (vpdpbusd), M >= 64: W packed per call into 32-column panels, 4x32 register tiles;
//  * AVX512-VNNI, M < 64: unpacked, each w row streamed once per group of 4 x rows;
//  * portable: dot products over K in a 2x4 register block (two x rows times four w rows share each
//    loaded byte) that the compiler turns into pmaddwd / vpdpwssd (target_clones per ISA).
// OpenMP over (M, N) tiles. Weight-only (fp32 accumulation): below 8 rows, dot products of x (converted
// once) with int8 w rows; from 8 rows, an outer-product kernel on fp32 weight panels.
#include "cpu/int8_gemm.h"
#include "common/simd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/half.h"
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kf::cpu {
namespace {

constexpr int64_t kTileM = 64, kTileN = 64;

// KERNELFLOW_INT8_PORTABLE=1 forces the portable loops (tests compare both paths).
bool force_portable() {
  const char* e = std::getenv("KERNELFLOW_INT8_PORTABLE");
  return e && *e && *e != '0';
}


// s[i * 4 + j] = sum_k a_i[k] * b_j[k], exact in int32.
KF_CLONES void dot_2x4(const int8_t* __restrict a0, const int8_t* __restrict a1, const int8_t* __restrict b0,
                       const int8_t* __restrict b1, const int8_t* __restrict b2, const int8_t* __restrict b3,
                       int64_t K, int32_t* __restrict s) {
  int32_t s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13)
  for (int64_t k = 0; k < K; ++k) {
    const int16_t x0 = a0[k], x1 = a1[k];
    const int16_t y0 = b0[k], y1 = b1[k], y2 = b2[k], y3 = b3[k];
    s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
    s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
  }
  s[0] = s00; s[1] = s01; s[2] = s02; s[3] = s03; s[4] = s10; s[5] = s11; s[6] = s12; s[7] = s13;
}

KF_CLONES int32_t dot_1x1(const int8_t* __restrict a, const int8_t* __restrict b, int64_t K) {
  int32_t s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < K; ++k) s += int16_t(a[k]) * int16_t(b[k]);
  return s;
}

// acc[i, j] for one (M, N) tile, acc row stride ld.
void tile_acc(const Mat& xq, const Mat& wq, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int32_t* acc, int64_t ld) {
  const int8_t* xd = static_cast<const int8_t*>(xq.data);
  const int8_t* wd = static_cast<const int8_t*>(wq.data);
  const int64_t K = xq.cols;
  int64_t m = m0;
  for (; m + 2 <= m1; m += 2) {
    const int8_t* a0 = xd + m * xq.rs;
    const int8_t* a1 = a0 + xq.rs;
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) {
      const int8_t* b0 = wd + n * wq.rs;
      int32_t s[8];
      dot_2x4(a0, a1, b0, b0 + wq.rs, b0 + 2 * wq.rs, b0 + 3 * wq.rs, K, s);
      for (int j = 0; j < 4; ++j) {
        acc[(m - m0) * ld + (n - n0) + j] = s[j];
        acc[(m + 1 - m0) * ld + (n - n0) + j] = s[4 + j];
      }
    }
    for (; n < n1; ++n) {
      const int8_t* b = wd + n * wq.rs;
      acc[(m - m0) * ld + (n - n0)] = dot_1x1(a0, b, K);
      acc[(m + 1 - m0) * ld + (n - n0)] = dot_1x1(a1, b, K);
    }
  }
  for (; m < m1; ++m)
    for (int64_t n = n0; n < n1; ++n) acc[(m - m0) * ld + (n - n0)] = dot_1x1(xd + m * xq.rs, wd + n * wq.rs, K);
}


// ---- AVX512-VNNI path (chosen at run time) ---------------------------------------------------
// vpdpbusd multiplies unsigned by signed bytes, so x is biased to u8 (x + 128, a sign-bit flip)
// and 128 * sum_k w[n,k] is subtracted afterwards. int32 arithmetic wraps modulo 2^32 and the true
// result fits in int32 (K <= kInt8GemmMaxK), so the corrected sum is exact even when the biased
// partial sums wrap. W is packed per call into panels of 32 columns: [K/4][32][4] bytes, so one
// 64-byte load feeds 16 columns x 4 k; x rows are broadcast 4 bytes at a time.
#if defined(__GNUC__) && defined(__x86_64__)
#define KF_HAVE_VNNI 1
constexpr int kNR = 32, kMR = 4;
// Below kVnniMinM rows the GEMM is bound by reading W once: packing it would cost more than it
// saves, so w rows are streamed unpacked (vnni_dot).
constexpr int64_t kVnniMinM = 64;

bool has_vnni() {
  static const bool v = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  return v;
}

// c[i][0..32) = sum over k4 of a_i[4 k4 .. 4 k4 + 3] . panel[k4][j][0..3] - corr[j]
template <int MR>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void vnni_kernel(
    const uint8_t* a, int64_t lda,      // [MR, 4 * K4] biased x rows
    const int8_t* panel, int64_t K4,    // [K4, 32, 4]
    const int32_t* corr,                // [32] = 128 * column sums
    int32_t* c) {                       // [MR, 32]
  __m512i acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
  for (int64_t k4 = 0; k4 < K4; ++k4) {
    const __m512i b0 = _mm512_loadu_si512(panel + k4 * 128);
    const __m512i b1 = _mm512_loadu_si512(panel + k4 * 128 + 64);
    for (int i = 0; i < MR; ++i) {
      int32_t v;
      std::memcpy(&v, a + i * lda + 4 * k4, 4);
      const __m512i av = _mm512_set1_epi32(v);
      acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], av, b1);
    }
  }
  const __m512i c0 = _mm512_loadu_si512(corr), c1 = _mm512_loadu_si512(corr + 16);
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_si512(c + i * kNR, _mm512_sub_epi32(acc[i][0], c0));
    _mm512_storeu_si512(c + i * kNR + 16, _mm512_sub_epi32(acc[i][1], c1));
  }
}

// Small M: no packing. Each w row is streamed once per group of up to 4 x rows, 64 bytes per
// step (masked loads for the K tail); sum_k w is accumulated alongside with a ones vector.
template <int MR>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void vnni_dot(
    const uint8_t* a, int64_t lda,  // [MR, K] biased x rows
    const int8_t* w, int64_t K,     // [K] one w row
    int32_t* out) {                 // [MR]
  __m512i acc[MR], sw = _mm512_setzero_si512();
  const __m512i ones = _mm512_set1_epi8(1);
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_si512();
  for (int64_t k = 0; k < K; k += 64) {
    const __mmask64 mask = K - k >= 64 ? ~__mmask64(0) : ((__mmask64(1) << (K - k)) - 1);
    const __m512i wv = _mm512_maskz_loadu_epi8(mask, w + k);
    sw = _mm512_dpbusd_epi32(sw, ones, wv);
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_maskz_loadu_epi8(mask, a + i * lda + k), wv);
  }
  const int32_t corr = 128 * _mm512_reduce_add_epi32(sw);
  for (int i = 0; i < MR; ++i) out[i] = _mm512_reduce_add_epi32(acc[i]) - corr;
}

// Calls sink(m, n, value) for every output, OpenMP over blocks of w rows.
template <typename Sink>
void vnni_small_m(const Mat& xq, const Mat& wq, Sink&& sink) {
  const int64_t M = xq.rows, N = wq.rows, K = xq.cols;
  std::vector<uint8_t> xu(M * K);
  const int8_t* xd = static_cast<const int8_t*>(xq.data);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) xu[m * K + k] = static_cast<uint8_t>(xd[m * xq.rs + k]) ^ 0x80u;
  const int8_t* wd = static_cast<const int8_t*>(wq.data);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const int8_t* w = wd + n * wq.rs;
    int32_t c[kMR];
    for (int64_t m = 0; m < M; m += kMR) {
      const uint8_t* a = xu.data() + m * K;
      const int64_t mr = std::min<int64_t>(kMR, M - m);
      switch (mr) {
        case 4: vnni_dot<4>(a, K, w, K, c); break;
        case 3: vnni_dot<3>(a, K, w, K, c); break;
        case 2: vnni_dot<2>(a, K, w, K, c); break;
        default: vnni_dot<1>(a, K, w, K, c); break;
      }
      for (int64_t i = 0; i < mr; ++i) sink(m + i, n, c[i]);
    }
  }
}

struct Packed {
  int64_t K4 = 0, panels = 0;
  std::vector<int8_t> w;     // [panels, K4, 32, 4]
  std::vector<int32_t> corr; // [panels * 32]
  std::vector<uint8_t> x;    // [M, 4 * K4] biased
};

void pack(const Mat& xq, const Mat& wq, Packed& p) {
  const int64_t M = xq.rows, N = wq.rows, K = xq.cols;
  p.K4 = (K + 3) / 4;
  p.panels = (N + kNR - 1) / kNR;
  const int64_t Kp = 4 * p.K4;
  p.w.assign(p.panels * p.K4 * kNR * 4, 0);
  p.corr.assign(p.panels * kNR, 0);
  p.x.assign(M * Kp, 0x80);
  const int8_t* wd = static_cast<const int8_t*>(wq.data);
  const int8_t* xd = static_cast<const int8_t*>(xq.data);
  const int64_t K4full = K / 4;  // whole 4-byte groups; the tail group is zero-padded
#pragma omp parallel for schedule(static)
  for (int64_t pn = 0; pn < p.panels; ++pn) {
    int8_t* dst = p.w.data() + pn * p.K4 * kNR * 4;
    const int64_t n0 = pn * kNR, nv = std::min<int64_t>(kNR, N - n0);
    for (int64_t j = 0; j < nv; ++j) {  // column sums, vectorised over K
      const int8_t* wr = wd + (n0 + j) * wq.rs;
      int32_t sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t k = 0; k < K; ++k) sum += wr[k];
      p.corr[n0 + j] = 128 * sum;
    }
    for (int64_t k4 = 0; k4 < K4full; ++k4)  // sequential writes, 32 sequential read streams
      for (int64_t j = 0; j < nv; ++j) std::memcpy(dst + (k4 * kNR + j) * 4, wd + (n0 + j) * wq.rs + 4 * k4, 4);
    for (int64_t k = 4 * K4full; k < K; ++k)
      for (int64_t j = 0; j < nv; ++j) dst[(K4full * kNR + j) * 4 + (k - 4 * K4full)] = wd[(n0 + j) * wq.rs + k];
  }
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const int8_t* xr = xd + m * xq.rs;
    uint8_t* dst = p.x.data() + m * Kp;
    for (int64_t k = 0; k < K; ++k) dst[k] = static_cast<uint8_t>(xr[k]) ^ 0x80u;
  }
}

// Calls sink(m, n0, c[MR][32], MR, nvalid) for every 4-row x 32-column block, OpenMP over blocks.
template <typename Sink>
void vnni_gemm(const Mat& xq, const Mat& wq, Sink&& sink) {
  Packed p;
  pack(xq, wq, p);
  const int64_t M = xq.rows, N = wq.rows, Kp = 4 * p.K4;
  const int64_t mblocks = (M + kTileM - 1) / kTileM;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t pn = 0; pn < p.panels; ++pn)
    for (int64_t bm = 0; bm < mblocks; ++bm) {
      alignas(64) int32_t c[kMR * kNR];
      const int8_t* panel = p.w.data() + pn * p.K4 * kNR * 4;
      const int32_t* corr = p.corr.data() + pn * kNR;
      const int64_t n0 = pn * kNR, nv = std::min<int64_t>(kNR, N - n0);
      const int64_t m1 = std::min(M, (bm + 1) * kTileM);
      for (int64_t m = bm * kTileM; m < m1; m += kMR) {
        const int64_t mr = std::min<int64_t>(kMR, m1 - m);
        const uint8_t* a = p.x.data() + m * Kp;
        switch (mr) {
          case 4: vnni_kernel<4>(a, Kp, panel, p.K4, corr, c); break;
          case 3: vnni_kernel<3>(a, Kp, panel, p.K4, corr, c); break;
          case 2: vnni_kernel<2>(a, Kp, panel, p.K4, corr, c); break;
          default: vnni_kernel<1>(a, Kp, panel, p.K4, corr, c); break;
        }
        sink(m, n0, c, mr, nv);
      }
    }
}
#endif

inline float activate(float v, int act) {
  if (act == 1) return v > 0.f ? v : 0.f;
  if (act == 2) return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f));
  return v;
}

template <typename O>
inline void put(void* base, int64_t off, float v) {
  if constexpr (std::is_same<O, float>::value) static_cast<float*>(base)[off] = v;
  else if constexpr (std::is_same<O, uint16_t>::value) static_cast<uint16_t*>(base)[off] = float_to_half_bits(v);
  else static_cast<int16_t*>(base)[off] = static_cast<int16_t>(float_to_bf16_bits(v));  // bf16 bits
}

template <typename O>
void w8a8(const Mat& xq, const Mat& wq, const float* rsc, const float* csc, const float* bias, int act, const Mat& y) {
  const int64_t M = xq.rows, N = wq.rows;
#ifdef KF_HAVE_VNNI
  if (M < kVnniMinM && has_vnni() && !force_portable()) {
    vnni_small_m(xq, wq, [&](int64_t m, int64_t n, int32_t c) {
      float v = static_cast<float>(c) * rsc[m] * csc[n];
      if (bias) v += bias[n];
      put<O>(y.data, m * y.rs + n, activate(v, act));
    });
    return;
  }
  if (M >= kVnniMinM && has_vnni() && !force_portable()) {
    vnni_gemm(xq, wq, [&](int64_t m0, int64_t n0, const int32_t* c, int64_t mr, int64_t nv) {
      for (int64_t i = 0; i < mr; ++i) {
        const float rs = rsc[m0 + i];
        for (int64_t j = 0; j < nv; ++j) {
          const int64_t n = n0 + j;
          float v = static_cast<float>(c[i * kNR + j]) * rs * csc[n];
          if (bias) v += bias[n];
          put<O>(y.data, (m0 + i) * y.rs + n, activate(v, act));
        }
      }
    });
    return;
  }
#endif
  const int64_t tm = (M + kTileM - 1) / kTileM, tn = (N + kTileN - 1) / kTileN;
#pragma omp parallel
  {
    std::vector<int32_t> acc(kTileM * kTileN);
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t bn = 0; bn < tn; ++bn)
      for (int64_t bm = 0; bm < tm; ++bm) {
        const int64_t m0 = bm * kTileM, m1 = std::min(M, m0 + kTileM);
        const int64_t n0 = bn * kTileN, n1 = std::min(N, n0 + kTileN);
        tile_acc(xq, wq, m0, m1, n0, n1, acc.data(), kTileN);
        for (int64_t m = m0; m < m1; ++m) {
          const float rs = rsc[m];
          for (int64_t n = n0; n < n1; ++n) {
            float v = static_cast<float>(acc[(m - m0) * kTileN + (n - n0)]) * rs * csc[n];
            if (bias) v += bias[n];
            put<O>(y.data, m * y.rs + n, activate(v, act));
          }
        }
      }
  }
}

template <typename T> inline float ld(const void* p, int64_t off) {
  if constexpr (std::is_same<T, float>::value) return static_cast<const float*>(p)[off];
  else if constexpr (std::is_same<T, uint16_t>::value) return half_bits_to_float(static_cast<const uint16_t*>(p)[off]);
  else return bf16_bits_to_float(static_cast<const uint16_t*>(static_cast<const void*>(p))[off]);
}

// s[i * 4 + j] = sum_k a_i[k] * float(b_j[k]) for MR x rows (fp32 accumulation): each int8 weight
// is loaded and converted once per MR rows.
template <int MR>
KF_CLONES void fdot(const float* __restrict a, int64_t lda, const int8_t* __restrict b0, const int8_t* __restrict b1,
                    const int8_t* __restrict b2, const int8_t* __restrict b3, int64_t K, float* __restrict s) {
  float r[4][4] = {};
  if constexpr (MR == 4) {  // 16 accumulators: each weight converted once for the four rows
    const float* __restrict x0 = a;
    const float* __restrict x1 = a + lda;
    const float* __restrict x2 = a + 2 * lda;
    const float* __restrict x3 = a + 3 * lda;
    float s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
    float s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)
    for (int64_t k = 0; k < K; ++k) {
      const float w0 = float(b0[k]), w1 = float(b1[k]), w2 = float(b2[k]), w3 = float(b3[k]);
      const float v0 = x0[k], v1 = x1[k], v2 = x2[k], v3 = x3[k];
      s00 += v0 * w0; s01 += v0 * w1; s02 += v0 * w2; s03 += v0 * w3;
      s10 += v1 * w0; s11 += v1 * w1; s12 += v1 * w2; s13 += v1 * w3;
      s20 += v2 * w0; s21 += v2 * w1; s22 += v2 * w2; s23 += v2 * w3;
      s30 += v3 * w0; s31 += v3 * w1; s32 += v3 * w2; s33 += v3 * w3;
    }
    const float t[16] = {s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33};
    for (int i = 0; i < 16; ++i) s[i] = t[i];
    return;
  }
  for (int i = 0; i < MR; ++i) {  // MR < 4 rows; the k loop below is the vectorised one
    const float* __restrict x = a + i * lda;
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t k = 0; k < K; ++k) {
      const float v = x[k];
      s0 += v * float(b0[k]); s1 += v * float(b1[k]); s2 += v * float(b2[k]); s3 += v * float(b3[k]);
    }
    r[i][0] = s0; r[i][1] = s1; r[i][2] = s2; r[i][3] = s3;
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 4; ++j) s[i * 4 + j] = r[i][j];
}

// Larger M: an outer-product micro-kernel. A 16-column panel of w is converted to fp32 once per
// K block ([kl][16], L1-resident) and reused by every row of the M tile; MR rows of x are broadcast
// against each 16-wide weight vector (MR FMAs per weight load).
constexpr int kWoNR = 16, kWoMR = 6, kWoKB = 256, kWoMinM = 8;

template <int MR>
KF_CLONES void wo_micro(const float* __restrict a, int64_t lda, const float* __restrict wp, int64_t kl,
                        float* __restrict c) {  // c [MR, 16] += a [MR, kl] @ wp [kl, 16]
  float acc[MR][kWoNR] = {};
  for (int64_t k = 0; k < kl; ++k) {
    const float* __restrict w = wp + k * kWoNR;
    for (int i = 0; i < MR; ++i) {
      const float v = a[i * lda + k];
#pragma omp simd
      for (int j = 0; j < kWoNR; ++j) acc[i][j] += v * w[j];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kWoNR; ++j) c[i * kWoNR + j] += acc[i][j];
}

template <typename O>
void wonly_panels(const std::vector<float>& xf, int64_t M, int64_t K, const Mat& wq, const float* wsc,
                  const float* bias, int act, const Mat& y) {
  const int64_t N = wq.rows;
  const int8_t* wd = static_cast<const int8_t*>(wq.data);
  const int64_t tn = (N + kWoNR - 1) / kWoNR, tm = (M + kTileM * 4 - 1) / (kTileM * 4);
#pragma omp parallel
  {
    std::vector<float> wp(kWoKB * kWoNR), c(kTileM * 4 * kWoNR);
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t bn = 0; bn < tn; ++bn)
      for (int64_t bm = 0; bm < tm; ++bm) {
        const int64_t n0 = bn * kWoNR, nv = std::min<int64_t>(kWoNR, N - n0);
        const int64_t m0 = bm * kTileM * 4, m1 = std::min(M, m0 + kTileM * 4);
        std::fill(c.begin(), c.end(), 0.f);
        for (int64_t k0 = 0; k0 < K; k0 += kWoKB) {
          const int64_t kl = std::min<int64_t>(kWoKB, K - k0);
          for (int64_t j = 0; j < kWoNR; ++j) {  // transpose + convert the panel; missing columns are 0
            const int8_t* wr = wd + (n0 + std::min<int64_t>(j, nv - 1)) * wq.rs + k0;
            const float keep = j < nv ? 1.f : 0.f;
            for (int64_t k = 0; k < kl; ++k) wp[k * kWoNR + j] = keep * static_cast<float>(wr[k]);
          }
          for (int64_t m = m0; m < m1; m += kWoMR) {
            const int64_t mr = std::min<int64_t>(kWoMR, m1 - m);
            const float* a = xf.data() + m * K + k0;
            float* cc = c.data() + (m - m0) * kWoNR;
            switch (mr) {
              case 6: wo_micro<6>(a, K, wp.data(), kl, cc); break;
              case 5: wo_micro<5>(a, K, wp.data(), kl, cc); break;
              case 4: wo_micro<4>(a, K, wp.data(), kl, cc); break;
              case 3: wo_micro<3>(a, K, wp.data(), kl, cc); break;
              case 2: wo_micro<2>(a, K, wp.data(), kl, cc); break;
              default: wo_micro<1>(a, K, wp.data(), kl, cc); break;
            }
          }
        }
        for (int64_t m = m0; m < m1; ++m)
          for (int64_t j = 0; j < nv; ++j) {
            float v = c[(m - m0) * kWoNR + j] * wsc[n0 + j];
            if (bias) v += bias[n0 + j];
            put<O>(y.data, m * y.rs + n0 + j, activate(v, act));
          }
      }
  }
}

// T: float (f32), uint16_t (f16 bits), int16_t (bf16 bits) for the input.
template <typename T, typename O>
void wonly(const Mat& x, const Mat& wq, const float* wsc, const float* bias, int act, const Mat& y) {
  const int64_t M = x.rows, N = wq.rows, K = x.cols;
  const int8_t* wd = static_cast<const int8_t*>(wq.data);
  std::vector<float> xf(M * K);  // x converted to fp32 once
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) xf[m * K + k] = ld<T>(x.data, m * x.rs + k * x.cs);
  if (M >= kWoMinM) return wonly_panels<O>(xf, M, K, wq, wsc, bias, act, y);
  // K-blocked so the 4 w rows (4 * kKB bytes) and the x block stay in L1 across the rows of x
  constexpr int64_t kKB = 2048;
  const int64_t tn = (N + kTileN - 1) / kTileN, tm = (M + kTileM - 1) / kTileM;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t bn = 0; bn < tn; ++bn)
    for (int64_t bm = 0; bm < tm; ++bm) {
      const int64_t m0 = bm * kTileM, m1 = std::min(M, m0 + kTileM), n1 = std::min(N, (bn + 1) * kTileN);
      for (int64_t n = bn * kTileN; n < n1; n += 4) {
        const int64_t nn = std::min<int64_t>(4, n1 - n);
        const int8_t* b[4];
        for (int j = 0; j < 4; ++j) b[j] = wd + std::min(n + j, n1 - 1) * wq.rs;
        float acc[kTileM][4] = {};
        for (int64_t k0 = 0; k0 < K; k0 += kKB) {
          const int64_t kl = std::min(kKB, K - k0);
          for (int64_t m = m0; m < m1; m += 4) {
            const int64_t mr = std::min<int64_t>(4, m1 - m);
            float s[16];
            const float* a = xf.data() + m * K + k0;
            switch (mr) {
              case 4: fdot<4>(a, K, b[0] + k0, b[1] + k0, b[2] + k0, b[3] + k0, kl, s); break;
              case 3: fdot<3>(a, K, b[0] + k0, b[1] + k0, b[2] + k0, b[3] + k0, kl, s); break;
              case 2: fdot<2>(a, K, b[0] + k0, b[1] + k0, b[2] + k0, b[3] + k0, kl, s); break;
              default: fdot<1>(a, K, b[0] + k0, b[1] + k0, b[2] + k0, b[3] + k0, kl, s); break;
            }
            for (int64_t i = 0; i < mr; ++i)
              for (int j = 0; j < 4; ++j) acc[m - m0 + i][j] += s[i * 4 + j];
          }
        }
        for (int64_t m = m0; m < m1; ++m)
          for (int j = 0; j < nn; ++j) {
            float v = acc[m - m0][j] * wsc[n + j];
            if (bias) v += bias[n + j];
            put<O>(y.data, m * y.rs + n + j, activate(v, act));
          }
      }
    }
}

template <typename F>
void by_out(DType d, F&& f) {
  switch (d) {
    case DType::f32: f(float{}); break;
    case DType::f16: f(uint16_t{}); break;
    default: f(int16_t{}); break;
  }
}

void check_common(const Mat& xq, const Mat& wq, const Mat* y, int act) {
  require_dtype(wq.dtype, {DType::i8}, "w_q");
  require(wq.cols == xq.cols, "x and w_q must have the same number of columns K");
  require(wq.cs == 1, "w_q must have unit column stride");
  require(act >= 0 && act <= 2, "activation code must be 0 (none), 1 (relu) or 2 (gelu)");
  require_nonnull(xq.data, xq.rows * xq.cols, "x");
  require_nonnull(wq.data, wq.rows * wq.cols, "w_q");
  if (y) {
    require_dtype(y->dtype, {DType::f32, DType::f16, DType::bf16}, "out");
    require(y->rows == xq.rows && y->cols == wq.rows, "out must have shape [M, N]");
    require(y->cs == 1 && y->rs >= y->cols, "out must have unit column stride");
  }
}

}  // namespace

void int8_gemm_acc(const Mat& xq, const Mat& wq, int32_t* acc) {
  require_dtype(xq.dtype, {DType::i8}, "x_q");
  require(xq.cs == 1, "x_q must have unit column stride");
  require(xq.cols <= kInt8GemmMaxK, "K must be <= 131071 for exact int32 accumulation");
  check_common(xq, wq, nullptr, 0);
  const int64_t M = xq.rows, N = wq.rows;
  if (M == 0 || N == 0) return;
#ifdef KF_HAVE_VNNI
  if (M < kVnniMinM && has_vnni() && !force_portable()) {
    vnni_small_m(xq, wq, [&](int64_t m, int64_t n, int32_t c) { acc[m * N + n] = c; });
    return;
  }
  if (M >= kVnniMinM && has_vnni() && !force_portable()) {
    vnni_gemm(xq, wq, [&](int64_t m0, int64_t n0, const int32_t* c, int64_t mr, int64_t nv) {
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t j = 0; j < nv; ++j) acc[(m0 + i) * N + n0 + j] = c[i * kNR + j];
    });
    return;
  }
#endif
  const int64_t tm = (M + kTileM - 1) / kTileM, tn = (N + kTileN - 1) / kTileN;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t bn = 0; bn < tn; ++bn)
    for (int64_t bm = 0; bm < tm; ++bm)
      tile_acc(xq, wq, bm * kTileM, std::min(M, (bm + 1) * kTileM), bn * kTileN, std::min(N, (bn + 1) * kTileN),
               acc + bm * kTileM * N + bn * kTileN, N);
}

void int8_gemm(const Mat& xq, const Mat& wq, const float* row_scale, const float* col_scale, const float* bias,
               int act, const Mat& y) {
  require_dtype(xq.dtype, {DType::i8}, "x_q");
  require(xq.cs == 1, "x_q must have unit column stride");
  require(xq.cols <= kInt8GemmMaxK, "K must be <= 131071 for exact int32 accumulation");
  check_common(xq, wq, &y, act);
  require_nonnull(row_scale, xq.rows, "row_scale");
  require_nonnull(col_scale, wq.rows, "col_scale");
  if (xq.rows == 0 || wq.rows == 0) return;
  by_out(y.dtype, [&](auto o) { w8a8<decltype(o)>(xq, wq, row_scale, col_scale, bias, act, y); });
}

void weight_only_gemm(const Mat& x, const Mat& wq, const float* w_scale, const float* bias, int act, const Mat& y) {
  require_dtype(x.dtype, {DType::f32, DType::f16, DType::bf16}, "x");
  check_common(x, wq, &y, act);
  require_nonnull(w_scale, wq.rows, "w_scale");
  if (x.rows == 0 || wq.rows == 0) return;
  by_out(y.dtype, [&](auto o) {
    using O = decltype(o);
    switch (x.dtype) {
      case DType::f32: return wonly<float, O>(x, wq, w_scale, bias, act, y);
      case DType::f16: return wonly<uint16_t, O>(x, wq, w_scale, bias, act, y);
      default: return wonly<int16_t, O>(x, wq, w_scale, bias, act, y);
    }
  });
}

}  // namespace kf::cpu
