// Weight-only int8 GEMM on the CPU: y = act((x @ float(w_q)^T) * w_scale + bias), fp32 accumulation,
// over the packed panels of int8_pack.h, threaded like the W8A8 driver (int8_gemm.cpp).
//
// Two regimes. Few rows (a block of fewer than kDequantRows): each panel is dequantized in
// registers as it streams by (int8 -> int32 -> fp32, then FMA), so W is read once as int8, the
// memory floor of a GEMV. Many rows: the whole panel is converted once per block into a per-thread
// fp32 copy (K * 64 bytes, L2 resident) and every row chunk runs a plain fp32 FMA kernel over it,
// so the conversion (two uops per vector on the FMA ports) is paid once per block instead of once
// per row chunk. Either way this is fp32 FMA work: for large M its ceiling is the fp32 matmul's.
// The avx512 and amx paths lift that ceiling with x in 24-bit fixed point split into three u8 digit
// rows, three exact int8 products per row (VNNI: wo_digits_driver; AMX-INT8 tiles:
// wo_amx_digits_driver) combined in int64, with an fp32 GEMM's accuracy.
#include "cpu/int8_gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/half.h"
#include "cpu/int8_check.h"
#include "cpu/int8_epilogue.h"
#include "cpu/int8_kernels.h"
#include "cpu/int8_pack.h"

namespace kf::cpu {
namespace {

constexpr int64_t kGroup = 4;        // panels per block: 64 columns
constexpr int64_t kTileRows = 120;   // rows per block: a multiple of 6, 4 and 3
constexpr int64_t kDequantRows = 12; // blocks with at least this many rows convert the panel once
constexpr int64_t kDequantMaxK4 = 4096;  // fp32 panel copy <= 1 MiB (K <= 16384); larger K streams int8
constexpr int64_t kParallelWork = int64_t(1) << 22;
// On the amx path weight-only calls of at least this many rows run the digits on AMX tiles (fewer:
// on VNNI, as the avx512 path). Measured at K = N = 4096, 2 threads, Intel Xeon with AMX: M = 1
// 0.57 ms AMX vs 0.51 VNNI, M = 2 0.51 vs 0.49, M = 4 0.54 vs 0.64, M = 8 0.54 vs 0.96.
constexpr int64_t kWoAmxMinRows = 4;

template <typename T>
inline float ld(const void* p, int64_t off) {
  if constexpr (std::is_same<T, float>::value) return static_cast<const float*>(p)[off];
  else if constexpr (std::is_same<T, uint16_t>::value) return half_bits_to_float(static_cast<const uint16_t*>(p)[off]);
  else return bf16_bits_to_float(static_cast<const uint16_t*>(p)[off]);
}

// x [M, K] (any strides, float32 / float16 bits / bfloat16 bits) -> fp32 [M, Kp], zero padded.
template <typename T>
std::vector<float> prepare_xf(const Mat& x, int64_t Kp) {
  const int64_t M = x.rows, K = x.cols;
  std::vector<float> buf(M * Kp);
#pragma omp parallel for schedule(static) if (M * K > (1 << 18))
  for (int64_t m = 0; m < M; ++m) {
    float* __restrict d = buf.data() + m * Kp;
    if (std::is_same<T, float>::value && x.cs == 1) {
      const float* __restrict s = static_cast<const float*>(x.data) + m * x.rs;
      for (int64_t k = 0; k < K; ++k) d[k] = s[k];
    } else {
      for (int64_t k = 0; k < K; ++k) d[k] = ld<T>(x.data, m * x.rs + k * x.cs);
    }
    for (int64_t k = K; k < Kp; ++k) d[k] = 0.f;
  }
  return buf;
}

// One block: rows [m0, m1) x panels [p0, p1). fbuf: this thread's fp32 panel copy [K4 * 64] or null.
template <typename Sink>
void wo_block(const float* xf, int64_t Kp, int64_t K4, const int8_t* W, int64_t N, Int8Path path, int64_t m0,
              int64_t m1, int64_t p0, int64_t p1, float* fbuf, const Sink& sink) {
  alignas(64) float c[6 * 16];
  const bool deq = fbuf != nullptr && m1 - m0 >= kDequantRows;
  for (int64_t p = p0; p < p1; ++p) {
    const int8_t* panel = W + p * K4 * 64;
    if (deq) wo_dequant_panel(panel, K4, fbuf, path == Int8Path::avx512 ? 512 : 2);
    if (path == Int8Path::avx2) {
      for (int h = 0; h < 2; ++h) {  // two 8-column halves
        const int64_t n0 = p * kPackNR + h * 8;
        if (n0 >= N) break;
        const int64_t nv = std::min<int64_t>(8, N - n0);
        for (int64_t m = m0; m < m1; m += 3) {
          const int mr = static_cast<int>(std::min<int64_t>(3, m1 - m));
          if (deq) wo_avx2_f32(xf + m * Kp, Kp, mr, fbuf, h, K4, c);
          else wo_avx2(xf + m * Kp, Kp, mr, panel, h, K4, c);
          for (int i = 0; i < mr; ++i) sink(m + i, n0, nv, c + i * 8);
        }
      }
      continue;
    }
    const int64_t n0 = p * kPackNR, nv = std::min<int64_t>(kPackNR, N - n0);
    const int64_t MR = path == Int8Path::avx512 ? 6 : 4;
    for (int64_t m = m0; m < m1; m += MR) {
      const int mr = static_cast<int>(std::min(MR, m1 - m));
      if (path == Int8Path::avx512) {
        if (deq) wo_avx512_f32(xf + m * Kp, Kp, mr, fbuf, K4, c);
        else wo_avx512(xf + m * Kp, Kp, mr, panel, K4, c);
      } else {
        wo_portable(xf + m * Kp, Kp, mr, panel, K4, c);
      }
      for (int i = 0; i < mr; ++i) sink(m + i, n0, nv, c + i * 16);
    }
  }
}

// avx512: x in 24-bit fixed point split into three u8 digit rows (wo_digits_avx512), three exact
// VNNI products per row, combined in int64 (int8_kernels_x86.cpp has the numerics). The one
// rounding is that of x to 24 bits relative to its row's largest |x| (an fp32 GEMM rounds every
// partial sum to 24 bits), so the error stays that of an fp32 GEMM; the work is 3 W8A8 products
// instead of fp32 FMA, whose ceiling is the fp32 matmul's, and a GEMV reads W once either way.
// Measured at K = N = 4096, 2 threads (AMD EPYC, Zen 5), digits vs FMA: M = 1 with W in cache
// 0.16 vs 0.21 ms (from memory both read W at the same speed), M = 8 0.97 vs 1.21 ms, M = 12 1.39
// vs 2.44 ms, M = 1024 73 vs 106-195 ms. The FMA kernels stay for x with NaN or inf and for
// K > 65536.
constexpr int kDigitRowsPerTile = kW8A8MaxRows / 3;      // x rows per W8A8 tile: 3 digit rows each
constexpr int64_t kDigitTileRows = kTileRows / 3;        // x rows per block: kTileRows digit rows

// One x row's output segment from its three digit sums a0, a1, a2 [ncols] (each a W8A8 product
// over a digit row): exact in int64 (|sum| < 2^23 * 128 * Kp <= 2^46), then one rounding.
inline void digits_combine(const int32_t* a0, const int32_t* a1, const int32_t* a2, const int32_t* colsum,
                           int64_t ncols, double inv, float* f) {
  for (int64_t j = 0; j < ncols; ++j) {
    const int64_t t = (int64_t(a2[j]) << 16) + (int64_t(a1[j]) << 8) + a0[j] - (int64_t(colsum[j]) << 23);
    f[j] = static_cast<float>(static_cast<double>(t) * inv);
  }
}

template <typename Sink>
void wo_digits_block(const uint8_t* xd, const double* inv, int64_t Kp, int64_t K4, const int8_t* W,
                     const int32_t* colsum, int64_t N, int64_t m0, int64_t m1, int64_t p0, int64_t p1,
                     const Sink& sink) {
  alignas(64) int32_t c[kW8A8MaxRows * 64];
  alignas(64) float f[64];
  for (int64_t p = p0; p < p1; p += kGroup) {
    const int np = static_cast<int>(std::min(kGroup, p1 - p));
    const int64_t n0 = p * kPackNR, ncols = np * kPackNR, nv = std::min(ncols, N - n0);
    for (int64_t m = m0; m < m1; m += kDigitRowsPerTile) {
      const int rows = static_cast<int>(std::min<int64_t>(kDigitRowsPerTile, m1 - m));
      w8a8_avx512(xd + 3 * m * Kp, Kp, 3 * rows, W + p * K4 * 64, np, K4, c);
      for (int i = 0; i < rows; ++i) {
        const int32_t* a0 = c + 3 * i * ncols;
        digits_combine(a0, a0 + ncols, a0 + 2 * ncols, colsum + n0, ncols, inv[m + i], f);
        sink(m + i, n0, nv, f);
      }
    }
  }
}

// false (nothing written) when x holds a NaN or an infinity: the caller runs the FMA kernels.
template <typename Sink>
bool wo_digits_driver(const std::vector<float>& xf, int64_t M, int64_t K, int64_t N, const uint8_t* packed,
                      const Sink& sink) {
  const int64_t K4 = int8_pack_k4(K), Kp = 4 * K4, Np = int8_pack_panels(N);
  AlignedVector<uint8_t> xd(3 * M * Kp);
  std::vector<double> inv(M);
  if (!wo_digits_avx512(xf.data(), M, Kp, false, xd.data(), inv.data())) return false;
  const int8_t* W = reinterpret_cast<const int8_t*>(packed);
  const int32_t* colsum = reinterpret_cast<const int32_t*>(packed + Np * K4 * 64);
  const int64_t ng = (Np + kGroup - 1) / kGroup, nm = (M + kDigitTileRows - 1) / kDigitTileRows;
#pragma omp parallel for collapse(2) schedule(dynamic) if (3 * M * N * K >= kParallelWork)
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t t = 0; t < nm; ++t)
      wo_digits_block(xd.data(), inv.data(), Kp, K4, W, colsum, N, t * kDigitTileRows,
                      std::min(M, (t + 1) * kDigitTileRows), g * kGroup, std::min(Np, (g + 1) * kGroup), sink);
  return true;
}

// amx: the same digit rows as AMX A tiles, AMX-INT8 (tdpbusd) products. Blocks: a chunk of
// kWoAmxDigitRows x rows (3x as many digit rows, kept in L2 while the thread walks the panel pairs)
// x 2 panels; each 32-row step runs 3 C blocks of 32 digit rows (the 96 digit rows of 32 x rows)
// over the panel pair, which stays in L2 across the chunk's steps. Measured at K = N = 4096, 2
// threads, Intel Xeon with AMX: M = 1024 32-35 ms vs 71-118 ms for the AMX-BF16 kernels this
// replaced (x split into three bf16 parts: half the tile throughput of int8).
constexpr int64_t kWoAmxDigitRows = 64;

template <typename Sink>
bool wo_amx_digits_driver(const std::vector<float>& xf, int64_t M, int64_t K, int64_t N, const uint8_t* packed,
                          const Sink& sink) {
  const int64_t K4 = int8_pack_k4(K), Kp = 4 * K4, Np = int8_pack_panels(N);
  const int64_t tiles = (3 * M + 15) / 16;  // row tiles of digit rows
  AlignedVector<uint8_t> xd(tiles * 16 * Kp);  // aligned: each tile row one cache line
  for (int64_t r = 3 * M; r < tiles * 16; ++r)  // the last tile's padding rows (the split writes the rest)
    for (int64_t kb = 0; kb < Kp / 64; ++kb) std::memset(xd.data() + (r / 16) * 16 * Kp + kb * 1024 + (r % 16) * 64, 0, 64);
  std::vector<double> inv(M);
  if (!wo_digits_avx512(xf.data(), M, Kp, true, xd.data(), inv.data())) return false;
  const int8_t* W = reinterpret_cast<const int8_t*>(packed);
  const int32_t* colsum = reinterpret_cast<const int32_t*>(packed + Np * K4 * 64);
  const int64_t ng = (Np + 1) / 2, nm = (M + kWoAmxDigitRows - 1) / kWoAmxDigitRows;
#pragma omp parallel if (3 * M * N * K >= kParallelWork)
  {
    alignas(64) int32_t c[96 * 32];
    alignas(64) float f[32];
    amx_thread_begin();  // the tile configuration is per thread
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t t = 0; t < nm; ++t)
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t p = 2 * g, m1 = std::min(M, (t + 1) * kWoAmxDigitRows);
        const int nb = static_cast<int>(std::min<int64_t>(2, Np - p));
        const int64_t n0 = p * kPackNR, ncols = nb * kPackNR, nv = std::min(ncols, N - n0);
        for (int64_t m = t * kWoAmxDigitRows; m < m1; m += 32) {
          const int64_t rows = std::min<int64_t>(32, m1 - m), r0 = 3 * m / 16, r1 = (3 * (m + rows) + 15) / 16;
          for (int64_t r = r0; r < r1; r += 2)  // C rows 16 (r - r0) on
            u8s8_amx(xd.data() + r * 16 * Kp, static_cast<int>(std::min<int64_t>(2, r1 - r)), W + p * K4 * 64, nb, K4,
                     c + (r - r0) * 16 * 32);
          for (int64_t i = 0; i < rows; ++i) {
            const int32_t* a0 = c + 3 * i * 32;
            digits_combine(a0, a0 + 32, a0 + 64, colsum + n0, ncols, inv[m + i], f);
            sink(m + i, n0, nv, f);
          }
        }
      }
    amx_thread_end();
  }
  return true;
}

template <typename Sink>
void wo_driver(const std::vector<float>& xf, int64_t M, int64_t K, int64_t N, const uint8_t* packed, Int8Path path,
               const Sink& sink) {
  const int64_t K4 = int8_pack_k4(K), Kp = 4 * K4, Np = int8_pack_panels(N);
  const int8_t* W = reinterpret_cast<const int8_t*>(packed);
  const int64_t ng = (Np + kGroup - 1) / kGroup, nm = (M + kTileRows - 1) / kTileRows;
  const bool deq = path != Int8Path::portable && M >= kDequantRows && K4 <= kDequantMaxK4;
#pragma omp parallel if (M * N * K >= kParallelWork)
  {
    std::vector<float> fbuf(deq ? K4 * 64 : 0);
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t g = 0; g < ng; ++g)
      for (int64_t t = 0; t < nm; ++t)
        wo_block(xf.data(), Kp, K4, W, N, path, t * kTileRows, std::min(M, (t + 1) * kTileRows), g * kGroup,
                 std::min(Np, (g + 1) * kGroup), deq ? fbuf.data() : nullptr, sink);
  }
}

}  // namespace

void weight_only_gemm(const Mat& x, const Mat& wq, const uint8_t* packed, int64_t packed_bytes, const float* w_scale,
                      const float* bias, int act, const Mat& y) {
  check_weight_only_args(x, wq, w_scale, act, y);
  if (x.rows == 0 || wq.rows == 0) return;
  AlignedVector<uint8_t> tmp;
  const uint8_t* p = int8_packed_or_pack(wq, packed, packed_bytes, tmp);
  const int64_t Kp = 4 * int8_pack_k4(x.cols);
  std::vector<float> xf = x.dtype == DType::f32   ? prepare_xf<float>(x, Kp)
                          : x.dtype == DType::f16 ? prepare_xf<uint16_t>(x, Kp)
                                                  : prepare_xf<int16_t>(x, Kp);
  // the digits wherever the CPU has VNNI (amx: on tiles from kWoAmxMinRows rows on); x with NaN or
  // inf, or Kp past the digits' int32 limit, on the fp32 FMA kernels. The epilogue is the vector
  // path's either way.
  const Int8Path chosen = int8_path(), path = int8_vector_path(chosen);
  const bool digits = path == Int8Path::avx512 && Kp <= kWoDigitsMaxKp;
  const bool tiles = digits && chosen == Int8Path::amx && x.rows >= kWoAmxMinRows;
  int8_by_out(y.dtype, [&](auto o) {
    const Int8Store<decltype(o)> sink{nullptr, w_scale, bias, act, y, path};
    const bool done = tiles    ? wo_amx_digits_driver(xf, x.rows, x.cols, wq.rows, p, sink)
                      : digits ? wo_digits_driver(xf, x.rows, x.cols, wq.rows, p, sink)
                               : false;
    if (!done) wo_driver(xf, x.rows, x.cols, wq.rows, p, path, sink);
  });
}

}  // namespace kf::cpu
