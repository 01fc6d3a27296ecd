// The packed int8 weight layout shared by every CPU int8 GEMM path (packing: int8_pack.cpp) and
// the path choice (int8_path.cpp). The micro-kernels reading it are declared in int8_kernels.h.
//
// Packed W [N, K] (int8): panels of 16 output columns, K padded to a multiple of 64 with zeros,
//   bytes [Np][K4][16][4]   (Np = ceil(N / 16), K4 = 16 ceil(K / 64); element (n, k) at
//                            ((n / 16) * K4 + k / 4) * 64 + (n % 16) * 4 + k % 4; padded columns are 0)
//   then int32 colsum [Np * 16] = sum_k W[n, k]   (the u8-bias correction of the VNNI path)
// One 64-byte row of a panel is what one vpdpbusd reads (16 columns x 4 k); the AVX2 and fp32 paths
// read 16 or 8 bytes of it (4 or 2 columns x 4 k) and keep per-column partial sums that are reduced
// once per tile, so one layout serves W8A8 and weight-only on every ISA. 16 consecutive rows of a
// panel (1024 contiguous bytes, 64-byte stride) are exactly an AMX B tile in the VNNI layout, which
// is why K4 is padded to a multiple of 16 (zeros add nothing to any path's sums).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/aligned.h"
#include "common/array.h"

namespace kf::cpu {

constexpr int kPackNR = 16;

inline int64_t int8_pack_k4(int64_t K) { return (K + 63) / 64 * 16; }
inline int64_t int8_pack_panels(int64_t N) { return (N + kPackNR - 1) / kPackNR; }
inline int64_t int8_packed_bytes(int64_t N, int64_t K) {
  return int8_pack_panels(N) * (int8_pack_k4(K) * 64 + kPackNR * 4);
}
// wq [N, K] int8 (unit column stride) -> out [int8_packed_bytes(N, K)].
void int8_pack(const Mat& wq, uint8_t* out);
// The packed weights a GEMM call reads: `packed` if given (ValueError unless it holds
// int8_packed_bytes(N, K) bytes), else wq packed into tmp (the per-call fallback).
const uint8_t* int8_packed_or_pack(const Mat& wq, const uint8_t* packed, int64_t bytes, AlignedVector<uint8_t>& tmp);

// Code paths. amx: AMX-INT8 tile products (tdpbssd, s8 x s8 -> exact int32) for W8A8 blocks of at
// least kAmxMinRows rows (fewer rows run the avx512 kernels, faster for a GEMV); for weight-only
// tdpbusd over x's fixed-point digit rows from 4 rows on (int8_weight_only.cpp; fewer rows: the
// avx512 kernels); chosen only when the CPU and OS allow tiles (common/cpu_amx.h).
// avx512: vpdpbusd (AVX512-VNNI) for W8A8 and for weight-only's digit rows (AVX-512F FMA for x
// with NaN / inf or K > 65536); avx2: int16
// vpmaddwd for W8A8 (exact for every int8 value, -128 included, unlike the saturating vpmaddubsw)
// and AVX2 FMA for weight-only; portable: plain C++ loops.
// The path follows kf::cpu::isa() (KERNELFLOW_CPU_ISA / set_cpu_isa lower it for every family; amx
// and avx512 both need the avx512 level) unless
// this family is forced on its own (KERNELFLOW_INT8_PATH / set_int8_path); avx512 also needs VNNI,
// so an AVX-512 CPU without it runs the avx2 path.
// W8A8 calls with fewer rows than this run the avx512 kernels on the amx path: a 16-row tile wastes
// most of its rows there and the cost is reading W either way (measured at K = N = 4096, 1 thread:
// M = 4 VNNI 0.73 ms vs AMX 0.76 ms; M = 8 0.80 vs 0.77; M = 16 1.38 vs 0.78).
constexpr int64_t kAmxMinRows = 8;
enum class Int8Path : int { portable = 0, avx2 = 1, avx512 = 2, amx = 3 };
constexpr Int8Path kInt8Paths[] = {Int8Path::portable, Int8Path::avx2, Int8Path::avx512, Int8Path::amx};
// The vector kernels a path runs outside its tiles (the epilogue, and the calls too small for
// tiles): amx's are avx512's, since every AMX CPU has AVX-512.
constexpr Int8Path int8_vector_path(Int8Path p) { return p == Int8Path::amx ? Int8Path::avx512 : p; }
bool int8_path_supported(Int8Path p);
const char* int8_path_name(Int8Path p);
// The path in use: the forced one (set_int8_path or KERNELFLOW_INT8_PATH at load), else the best
// supported at or below kf::cpu::isa().
Int8Path int8_path();
// "auto", "portable", "avx2", "avx512" or "amx"; throws std::invalid_argument if this CPU cannot run it.
void set_int8_path(const std::string& name);

}  // namespace kf::cpu
