// Micro-kernel and epilogue contracts of the CPU int8 GEMMs, one implementation per path:
// int8_kernels_x86.cpp (avx512, avx2) and int8_portable.cpp (portable). The drivers
// (int8_gemm.cpp, int8_weight_only.cpp) choose the path once per call and call these per tile.
// All of them read the packed weights of int8_pack.h: panel [K4][16][4] int8 per 16 columns.
#pragma once
#include <cstdint>

namespace kf::cpu {

// ---- W8A8 accumulators: c [mr][ncols] int32, exact (int32 wraps modulo 2^32; the true sum fits) ----
// avx512: x [mr, ld] biased u8 (x ^ 0x80, padding 0x80), mr 1..6 with np 1..4 panels
//         (ncols = 16 np); the caller subtracts 128 * colsum (epilogue `colsum`).
// avx2:   x [mr, ld] int16, mr 1..4, the 8 columns from `half` * 8 of one panel (ncols = 8); or
//         half = -1: the whole panel (ncols = 16) for mr 1..2.
// portable: x [mr, ld] int8, mr 1..4, one panel (ncols = 16).
// ld >= 4 * K4, zero padded past K (0x80 for the biased u8).
constexpr int kW8A8MaxRows = 6;
void w8a8_avx512(const uint8_t* x, int64_t ld, int mr, const int8_t* panel, int np, int64_t K4, int32_t* c);
void w8a8_avx2(const int16_t* x, int64_t ld, int mr, const int8_t* panel, int half, int64_t K4, int32_t* c);
void w8a8_portable(const int8_t* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, int32_t* c);
// amx (int8_amx.cpp): x the A tiles of 16 mb rows: [mb][K4 / 16][16][64] int8 (zero padded; the
// layout int8_gemm.cpp's prepare_x8 writes, a row tile every K4 * 64 bytes), nb consecutive panels (mb, nb in 1..2) -> c [32][32] int32 (row stride 32; only the 16 mb x 16 nb
// corner written). Call amx_thread_begin() in a thread before its first w8a8_amx (it loads the tile
// configuration, which is per thread) and amx_thread_end() after its last.
void w8a8_amx(const int8_t* x, int mb, const int8_t* panel, int nb, int64_t K4, int32_t* c);
// the same over unsigned x tiles (tdpbusd, u8 x s8): the weight-only digit rows
void u8s8_amx(const uint8_t* x, int mb, const int8_t* panel, int nb, int64_t K4, int32_t* c);
void amx_thread_begin();
void amx_thread_end();

// ---- weight-only, fp32 accumulation: c [mr][16] (avx512, portable) or [mr][8] (avx2, half) ----
// x [mr, ld] fp32 zero padded past K. B is either the int8 panel (dequantized in registers: the
// small-M path, where reading W once is the cost) or the same panel already converted to fp32 by
// wo_dequant_panel (large M: the conversion is paid once per panel and row tile, not per row).
// avx512: mr 1..6; avx2: mr 1..3; portable: mr 1..4.
void wo_avx512(const float* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, float* c);
void wo_avx512_f32(const float* x, int64_t ld, int mr, const float* panel, int64_t K4, float* c);
void wo_avx2(const float* x, int64_t ld, int mr, const int8_t* panel, int half, int64_t K4, float* c);
void wo_avx2_f32(const float* x, int64_t ld, int mr, const float* panel, int half, int64_t K4, float* c);
void wo_portable(const float* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, float* c);
// weight-only as three exact W8A8 products (numerics in int8_kernels_x86.cpp): x [rows, Kp] fp32
// (zero padded to Kp <= 65536, a multiple of 64) -> the u8 digit rows (row 3 m + j: digit j of row m
// in 24-bit fixed point, offset by 2^23) and inv_scale [rows] (the fixed point's 2^-e); false if x
// holds a NaN or an infinity (out is then incomplete). out: [3 rows, Kp] plain rows (tiles false,
// for w8a8_avx512), or (tiles true, for u8s8_amx) the AMX A tiles of those rows,
// [ceil(3 rows / 16)][Kp / 64][16][64], rows past 3 rows of the last tile left as they are.
constexpr int64_t kWoDigitsMaxKp = 65536;
bool wo_digits_avx512(const float* x, int64_t rows, int64_t Kp, bool tiles, uint8_t* out, double* inv_scale);
// panel [K4 * 64] int8 -> out [K4 * 64] fp32 (same order); `avx` picks the vector loop.
void wo_dequant_panel(const int8_t* panel, int64_t K4, float* out, int avx);

// ---- the fused epilogue of one output row segment --------------------------------------------
// W8A8 (int32 c): y[n] = act(float(c[n]) * r * cs[n] + bias[n]); weight-only (fp32 c):
// y[n] = act(c[n] * cs[n] + bias[n]); n < nv, float32 out, fp32 evaluated left to right with no
// fused multiply-add (what the reference computes). bias null: none. act: 0 none, 1 relu (NaN
// stays NaN), 2 gelu (exact erf, scalar).
struct EpiArgs {
  float r;                // row scale (W8A8 only)
  const float* cs;        // [nv]
  const float* bias;      // [nv] or null
  int act;
};
void epilogue_i32_avx512(const int32_t* c, int64_t nv, const EpiArgs& a, float* y);
void epilogue_i32_avx2(const int32_t* c, int64_t nv, const EpiArgs& a, float* y);
void epilogue_f32_avx512(const float* c, int64_t nv, const EpiArgs& a, float* y);
void epilogue_f32_avx2(const float* c, int64_t nv, const EpiArgs& a, float* y);

}  // namespace kf::cpu
