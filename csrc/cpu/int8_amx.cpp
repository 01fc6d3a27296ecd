// AMX-INT8 micro-kernel of the W8A8 GEMM and of the weight-only digit rows (contracts in
// int8_kernels.h) over the packed panels of int8_pack.h. Compiled with a target attribute and only
// called after int8_path_supported(amx) (common/cpu_amx.h: CPUID, XCR0 and the Linux tile
// permission), so the library stays baseline x86-64.
//
// Tile registers (palette 1, every tile 16 rows x 64 bytes): tmm0..3 the 2 x 2 int32 C tiles of a
// 32-row x 32-column block, tmm4..5 two A tiles (16 rows x 64 k of x, 1 KiB contiguous each), tmm6..7
// two B tiles (16 k4 rows of one panel = 1024 contiguous bytes, stride 64: the panel layout is the
// VNNI layout tdpbssd reads). tdpbssd is s8 x s8 with exact int32 accumulation, so no u8 bias and
// no column-sum correction are needed (unlike vpdpbusd); the weight-only digits (u8) run tdpbusd.
// Each of the 4 products per k block reuses one A and one B tile loaded for two products: 4 tile
// loads per 4 products, the most reuse 8 tile registers allow. That ratio is the ceiling: measured on
// a 2-core Intel Xeon with AMX (KVM), one core, tiles from L1: products alone 6.7 TOP/s, a tile load
// 16.6 ns (a product 4.9 ns), this 2 x 2 block 2.0 TOP/s; software prefetch of the next tiles
// changed nothing.
#include "cpu/int8_kernels.h"

#include <cstring>
#include <stdexcept>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define KF_AMX_X86 1
#define KF_AMX __attribute__((target("amx-tile,amx-int8,avx512f")))
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

// tile products: U8 x unsigned (tdpbusd, u8 x s8, the weight-only digit rows), else signed
// (tdpbssd); both exact in int32. The intrinsics paste their literal tile numbers into the
// instruction text, hence a macro.
#define KF_AMX_DP(C, A, B)                   \
  do {                                       \
    if constexpr (U8) _tile_dpbusd(C, A, B); \
    else _tile_dpbssd(C, A, B);              \
  } while (0)

// C [32][32] int32 (row stride 128 bytes): tile (i, j) at rows 16 i, columns 16 j.
template <int MB, int NB, bool U8>
KF_AMX void amx_block(const void* xv, const int8_t* panel, int64_t K4, int32_t* c) {
  const auto* x = static_cast<const uint8_t*>(xv);
  _tile_zero(0);
  if constexpr (NB > 1) _tile_zero(1);
  if constexpr (MB > 1) _tile_zero(2);
  if constexpr (MB > 1 && NB > 1) _tile_zero(3);
  const int8_t* b1 = panel + K4 * 64;  // the next panel
  const uint8_t* x1 = x + K4 * 64;     // the next row tile (K4 / 16 tiles of 1 KiB per row tile)
  for (int64_t kb = 0; kb < K4 / 16; ++kb) {
    _tile_loadd(4, x + kb * 1024, 64);
    _tile_loadd(6, panel + kb * 1024, 64);
    if constexpr (NB > 1) _tile_loadd(7, b1 + kb * 1024, 64);
    KF_AMX_DP(0, 4, 6);
    if constexpr (NB > 1) KF_AMX_DP(1, 4, 7);
    if constexpr (MB > 1) {
      _tile_loadd(5, x1 + kb * 1024, 64);
      KF_AMX_DP(2, 5, 6);
      if constexpr (NB > 1) KF_AMX_DP(3, 5, 7);
    }
  }
  _tile_stored(0, c, 128);
  if constexpr (NB > 1) _tile_stored(1, c + 16, 128);
  if constexpr (MB > 1) _tile_stored(2, c + 16 * 32, 128);
  if constexpr (MB > 1 && NB > 1) _tile_stored(3, c + 16 * 32 + 16, 128);
}
#undef KF_AMX_DP
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

template <bool U8>
static void amx_tiles(const void* x, int mb, const int8_t* panel, int nb, int64_t K4, int32_t* c) {
  if (mb == 2 && nb == 2) return amx_block<2, 2, U8>(x, panel, K4, c);
  if (mb == 2 && nb == 1) return amx_block<2, 1, U8>(x, panel, K4, c);
  if (mb == 1 && nb == 2) return amx_block<1, 2, U8>(x, panel, K4, c);
  if (mb == 1 && nb == 1) return amx_block<1, 1, U8>(x, panel, K4, c);
  throw std::logic_error("amx tiles: mb and nb must be 1 or 2");
}

void w8a8_amx(const int8_t* x, int mb, const int8_t* panel, int nb, int64_t K4, int32_t* c) {
  amx_tiles<false>(x, mb, panel, nb, K4, c);
}
void u8s8_amx(const uint8_t* x, int mb, const int8_t* panel, int nb, int64_t K4, int32_t* c) {
  amx_tiles<true>(x, mb, panel, nb, K4, c);
}

#else  // not x86-64 GCC: the amx path is never supported (int8_path_supported), so never called

[[noreturn]] static void no_amx() { throw std::logic_error("AMX int8 path not compiled"); }
void amx_thread_begin() { no_amx(); }
void amx_thread_end() { no_amx(); }
void w8a8_amx(const int8_t*, int, const int8_t*, int, int64_t, int32_t*) { no_amx(); }
void u8s8_amx(const uint8_t*, int, const int8_t*, int, int64_t, int32_t*) { no_amx(); }

#endif

}  // namespace kf::cpu
