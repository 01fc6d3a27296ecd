// The packed int8 weight layout shared by every CPU int8 GEMM path, the path choice, and the
// micro-kernels (int8_kernels_x86.cpp holds the AVX2 and AVX-512 ones, int8_gemm.cpp the portable
// ones and the drivers).
//
// Packed W [N, K] (int8): panels of 16 output columns, K padded to a multiple of 4 with zeros,
//   bytes [Np][K4][16][4]   (Np = ceil(N / 16), K4 = ceil(K / 4); element (n, k) at
//                            ((n / 16) * K4 + k / 4) * 64 + (n % 16) * 4 + k % 4; padded columns are 0)
//   then int32 colsum [Np * 16] = sum_k W[n, k]   (the u8-bias correction of the VNNI path)
// One 64-byte row of a panel is what one vpdpbusd reads (16 columns x 4 k); the AVX2 and fp32 paths
// read 16 or 8 bytes of it (4 or 2 columns x 4 k) and keep per-column partial sums that are reduced
// once per tile, so one layout serves W8A8 and weight-only on every ISA.
#pragma once
#include <cstdint>
#include <string>

#include "common/array.h"

namespace kf::cpu {

constexpr int kPackNR = 16;

inline int64_t int8_pack_k4(int64_t K) { return (K + 3) / 4; }
inline int64_t int8_pack_panels(int64_t N) { return (N + kPackNR - 1) / kPackNR; }
inline int64_t int8_packed_bytes(int64_t N, int64_t K) {
  return int8_pack_panels(N) * (int8_pack_k4(K) * 64 + kPackNR * 4);
}
// wq [N, K] int8 (unit column stride) -> out [int8_packed_bytes(N, K)].
void int8_pack(const Mat& wq, uint8_t* out);

// Code paths. avx512: vpdpbusd (AVX512-VNNI) for W8A8, AVX-512F FMA for weight-only; avx2: int16
// vpmaddwd for W8A8 (exact for every int8 value, -128 included, unlike the saturating vpmaddubsw)
// and AVX2 FMA for weight-only; portable: plain C++ loops.
enum class Int8Path : int { portable = 0, avx2 = 1, avx512 = 2 };
bool int8_path_supported(Int8Path p);
const char* int8_path_name(Int8Path p);
// The path in use: the forced one (set_int8_path or KERNELFLOW_INT8_PATH at load), else the best supported.
Int8Path int8_path();
// "auto", "portable", "avx2" or "avx512"; throws std::invalid_argument if this CPU cannot run it.
void set_int8_path(const std::string& name);

// ---- micro-kernels ----------------------------------------------------------------------------
// W8A8, c[i][j] for mr rows (1..8 for avx512, 1..2 for avx2) times np panels (1..2 for avx512, 1
// otherwise) of 16 columns; exact int32.
//   avx512: x is biased u8 (x ^ 0x80), the caller subtracts 128 * colsum;
//   avx2:   x is int16;  portable: x is int8.
// x [mr, ld] (ld >= 4 * K4, zero padded past K), panel [np][K4][16][4], c [mr][np * 16].
void w8a8_avx512(const uint8_t* x, int64_t ld, int mr, const int8_t* panel, int np, int64_t K4, int32_t* c);
void w8a8_avx2(const int16_t* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, int32_t* c);
// Weight-only, fp32 accumulation: c[i][j] = sum_k x[i][k] * w[k][j] for mr rows (1..6 avx512, 1..3
// avx2) of fp32 x [mr, ld] (zero padded past K) and one panel; avx512 covers the 16 columns, avx2
// the 8 columns from `half` * 8. c [mr][16] or [mr][8].
void wo_avx512(const float* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, float* c);
void wo_avx2(const float* x, int64_t ld, int mr, const int8_t* panel, int half, int64_t K4, float* c);

}  // namespace kf::cpu
