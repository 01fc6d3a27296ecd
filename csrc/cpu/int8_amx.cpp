// AMX-INT8 micro-kernel of the W8A8 GEMM (contract in int8_kernels.h) over the packed panels of
// int8_pack.h. Compiled with a target attribute and only called after int8_path_supported(amx)
// (common/cpu_amx.h: CPUID, XCR0 and the Linux tile permission), so the library stays baseline x86-64.
//
// Tile registers (palette 1, every tile 16 rows x 64 bytes): tmm0..3 the 2 x 2 int32 C tiles of a
// 32-row x 32-column block, tmm4..5 two A tiles (16 rows x 64 k of x, 1 KiB contiguous each), tmm6..7
// two B tiles (16 k4 rows of one panel = 1024 contiguous bytes, stride 64: the panel layout is the
// VNNI layout tdpbssd reads). tdpbssd is s8 x s8 with exact int32 accumulation, so no u8 bias and
// no column-sum correction are needed (unlike vpdpbusd). Each of the 4 products per k block reuses
// one A and one B tile loaded for two products: 4 tile loads per 4 tdpbssd.
#include "cpu/int8_kernels.h"

#include <cstring>
#include <stdexcept>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define KF_AMX_X86 1
#define KF_AMX __attribute__((target("amx-tile,amx-int8,avx512f")))
#define KF_AMXBF16 __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl")))
#endif

namespace kf::cpu {

#ifdef KF_AMX_X86

namespace {
struct alignas(64) TileConfig {  // the 64-byte operand of ldtilecfg, palette 1
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];  // bytes per row of tile i
  uint8_t rows[16];
};

// C [32][32] int32 (row stride 128 bytes): tile (i, j) at rows 16 i, columns 16 j.
template <int MB, int NB>
KF_AMX void amx_block(const int8_t* x, const int8_t* panel, int64_t K4, int32_t* c) {
  _tile_zero(0);
  if constexpr (NB > 1) _tile_zero(1);
  if constexpr (MB > 1) _tile_zero(2);
  if constexpr (MB > 1 && NB > 1) _tile_zero(3);
  const int8_t* b1 = panel + K4 * 64;  // the next panel
  const int8_t* x1 = x + K4 * 64;      // the next row tile (K4 / 16 tiles of 1 KiB per row tile)
  for (int64_t kb = 0; kb < K4 / 16; ++kb) {
    _tile_loadd(4, x + kb * 1024, 64);
    _tile_loadd(6, panel + kb * 1024, 64);
    if constexpr (NB > 1) _tile_loadd(7, b1 + kb * 1024, 64);
    _tile_dpbssd(0, 4, 6);
    if constexpr (NB > 1) _tile_dpbssd(1, 4, 7);
    if constexpr (MB > 1) {
      _tile_loadd(5, x1 + kb * 1024, 64);
      _tile_dpbssd(2, 5, 6);
      if constexpr (NB > 1) _tile_dpbssd(3, 5, 7);
    }
  }
  _tile_stored(0, c, 128);
  if constexpr (NB > 1) _tile_stored(1, c + 16, 128);
  if constexpr (MB > 1) _tile_stored(2, c + 16 * 32, 128);
  if constexpr (MB > 1 && NB > 1) _tile_stored(3, c + 16 * 32 + 16, 128);
}
}  // namespace

KF_AMX void amx_thread_begin() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  // Not _tile_loadconfig: GCC 12 does not see that its builtin reads the struct and drops the
  // stores above (all tiles then unconfigured: #UD). The asm names the struct as its input.
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

KF_AMX void amx_thread_end() { _tile_release(); }

void w8a8_amx(const int8_t* x, int mb, const int8_t* panel, int nb, int64_t K4, int32_t* c) {
  if (mb == 2 && nb == 2) return amx_block<2, 2>(x, panel, K4, c);
  if (mb == 2 && nb == 1) return amx_block<2, 1>(x, panel, K4, c);
  if (mb == 1 && nb == 2) return amx_block<1, 2>(x, panel, K4, c);
  if (mb == 1 && nb == 1) return amx_block<1, 1>(x, panel, K4, c);
  throw std::logic_error("w8a8_amx: mb and nb must be 1 or 2");
}


// ---- weight-only, AMX-BF16 with x split in three bf16 parts ----------------------------------
// x = hi + mid + lo exactly: each part is the truncation of what is left to bf16 (8 significant
// bits), and 3 x 8 bits hold a float's 24, so no rounding happens in the split (truncation, not
// round-to-nearest, so a value near FLT_MAX cannot round up to inf). w (int8) is exact in bf16, so
// each product part * w is exact in fp32 and tdpbf16ps adds them into fp32 accumulators: an fp32
// GEMM over 3 K terms in another order. Non-finite x: hi = x (a NaN as the quiet NaN 0x7fc0, which
// truncation could otherwise turn into inf), mid = lo = 0, so inf * w and NaN propagate as in fp32.
// AMX treats bf16 denormal inputs as zero: a part below 2^-126 (fp32's normal range) is dropped,
// an absolute error below 2^-126 * |w| per term, invisible next to any normal-sized sum.

// x [16 mb rows, ld] fp32 (zero padded past K to Kp = 32 KB) -> out [mb][KB][3][16][32] bf16 (row
// tile r, k block kb, part p at ((r * KB + kb) * 3 + p) * 512 elements).
KF_AMXBF16 void amx_split_bf16x3(const float* x, int64_t ld, int64_t rows, int64_t Kp, uint16_t* out) {
  const int64_t KB = Kp / 32;
  const __m512i top = _mm512_set1_epi32(static_cast<int>(0xffff0000u)), expo = _mm512_set1_epi32(0x7f800000);
  const __m512i qnan = _mm512_set1_epi32(0x7fc00000);
  for (int64_t m = 0; m < rows; ++m) {
    const float* xr = x + m * ld;
    uint16_t* base = out + (m / 16) * KB * 3 * 512 + (m % 16) * 32;
    for (int64_t k = 0; k < Kp; k += 16) {
      const __m512i b = _mm512_castps_si512(_mm512_loadu_ps(xr + k));
      const __mmask16 nonfinite = _mm512_cmpeq_epi32_mask(_mm512_and_si512(b, expo), expo);
      const __mmask16 nan = _mm512_mask_cmpneq_epi32_mask(nonfinite, _mm512_and_si512(b, _mm512_set1_epi32(0x007fffff)),
                                                         _mm512_setzero_si512());
      __m512i hi = _mm512_mask_mov_epi32(_mm512_and_si512(b, top), nan, qnan);
      const __m512 r1 = _mm512_sub_ps(_mm512_castsi512_ps(b), _mm512_castsi512_ps(hi));
      __m512i mid = _mm512_and_si512(_mm512_castps_si512(r1), top);
      const __m512 r2 = _mm512_sub_ps(r1, _mm512_castsi512_ps(mid));
      __m512i lo = _mm512_and_si512(_mm512_castps_si512(r2), top);
      mid = _mm512_maskz_mov_epi32(static_cast<__mmask16>(~nonfinite), mid);
      lo = _mm512_maskz_mov_epi32(static_cast<__mmask16>(~nonfinite), lo);
      uint16_t* d = base + (k / 32) * 3 * 512 + (k % 32);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm512_cvtepi32_epi16(_mm512_srli_epi32(hi, 16)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 512), _mm512_cvtepi32_epi16(_mm512_srli_epi32(mid, 16)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 1024), _mm512_cvtepi32_epi16(_mm512_srli_epi32(lo, 16)));
    }
  }
}

// panel [K4][16][4] int8 -> out [K4 / 8][16][32] bf16: the B tiles of tdpbf16ps (16 rows of k pairs
// x 16 columns x 2), k block kb (32 k) at kb * 512 elements. One int8 row (k = 4 r .. 4 r + 3) gives
// bf16 rows 2 r (k pair 0, 1) and 2 r + 1 (k pair 2, 3). bf16 = the top half of the fp32 bits
// (exact for an integer of at most 8 bits); one word permute per 8 columns picks those halves.
KF_AMXBF16 static inline __m512i int8x16_f32_bits(const int8_t* p) {
  return _mm512_castps_si512(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))));
}

KF_AMXBF16 void amx_panel_bf16(const int8_t* panel, int64_t K4, uint16_t* out) {
  // words of two fp32 vectors (columns 8 h .. 8 h + 7, 4 k each): the high half of (n, k) is word
  // 2 (4 n + k) + 1; lanes 0..15 take k 0, 1 of the 8 columns, lanes 16..31 k 2, 3
  alignas(64) int16_t idx[32];
  for (int n = 0; n < 8; ++n)
    for (int t = 0; t < 2; ++t) {
      idx[2 * n + t] = static_cast<int16_t>(2 * (4 * n + t) + 1);
      idx[16 + 2 * n + t] = static_cast<int16_t>(2 * (4 * n + 2 + t) + 1);
    }
  const __m512i pick = _mm512_load_si512(idx);
  for (int64_t r = 0; r < K4; ++r) {
    const int8_t* row = panel + r * 64;
    const __m512i lo8 = _mm512_permutex2var_epi16(int8x16_f32_bits(row), pick, int8x16_f32_bits(row + 16));       // columns 0..7
    const __m512i hi8 = _mm512_permutex2var_epi16(int8x16_f32_bits(row + 32), pick, int8x16_f32_bits(row + 48));  // columns 8..15
    _mm512_storeu_si512(out + (2 * r) * 32, _mm512_shuffle_i64x2(lo8, hi8, 0x44));      // k 0, 1 of 16 columns
    _mm512_storeu_si512(out + (2 * r + 1) * 32, _mm512_shuffle_i64x2(lo8, hi8, 0xee));  // k 2, 3
  }
}

namespace {
// C [32][32] fp32 (row stride 128 bytes). x: split tiles of row tile 0 (row tile 1 at x + KB * 1536
// elements); b: bf16 tiles of panel 0 (panel 1 at b + KB * 512).
template <int MB, int NB>
KF_AMXBF16 void amx_bf16_block(const uint16_t* x, const uint16_t* b, int64_t KB, float* c) {
  _tile_zero(0);
  if constexpr (NB > 1) _tile_zero(1);
  if constexpr (MB > 1) _tile_zero(2);
  if constexpr (MB > 1 && NB > 1) _tile_zero(3);
  const uint16_t* x1 = x + KB * 1536;
  const uint16_t* b1 = b + KB * 512;
  for (int64_t kb = 0; kb < KB; ++kb) {
    _tile_loadd(6, b + kb * 512, 64);
    if constexpr (NB > 1) _tile_loadd(7, b1 + kb * 512, 64);
#pragma GCC unroll 3
    for (int p = 0; p < 3; ++p) {
      _tile_loadd(4, x + (kb * 3 + p) * 512, 64);
      _tile_dpbf16ps(0, 4, 6);
      if constexpr (NB > 1) _tile_dpbf16ps(1, 4, 7);
      if constexpr (MB > 1) {
        _tile_loadd(5, x1 + (kb * 3 + p) * 512, 64);
        _tile_dpbf16ps(2, 5, 6);
        if constexpr (NB > 1) _tile_dpbf16ps(3, 5, 7);
      }
    }
  }
  _tile_stored(0, c, 128);
  if constexpr (NB > 1) _tile_stored(1, c + 16, 128);
  if constexpr (MB > 1) _tile_stored(2, c + 16 * 32, 128);
  if constexpr (MB > 1 && NB > 1) _tile_stored(3, c + 16 * 32 + 16, 128);
}
}  // namespace

void wo_amx(const uint16_t* x, int mb, const uint16_t* b, int nb, int64_t KB, float* c) {
  if (mb == 2 && nb == 2) return amx_bf16_block<2, 2>(x, b, KB, c);
  if (mb == 2 && nb == 1) return amx_bf16_block<2, 1>(x, b, KB, c);
  if (mb == 1 && nb == 2) return amx_bf16_block<1, 2>(x, b, KB, c);
  if (mb == 1 && nb == 1) return amx_bf16_block<1, 1>(x, b, KB, c);
  throw std::logic_error("wo_amx: mb and nb must be 1 or 2");
}

#else  // not x86-64 GCC: the amx path is never supported (int8_path_supported), so never called

[[noreturn]] static void no_amx() { throw std::logic_error("AMX int8 path not compiled"); }
void amx_thread_begin() { no_amx(); }
void amx_thread_end() { no_amx(); }
void w8a8_amx(const int8_t*, int, const int8_t*, int, int64_t, int32_t*) { no_amx(); }
void amx_split_bf16x3(const float*, int64_t, int64_t, int64_t, uint16_t*) { no_amx(); }
void amx_panel_bf16(const int8_t*, int64_t, uint16_t*) { no_amx(); }
void wo_amx(const uint16_t*, int, const uint16_t*, int, int64_t, float*) { no_amx(); }

#endif

}  // namespace kf::cpu
