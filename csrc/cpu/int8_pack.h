// The packed int8 weight layout shared by every CPU int8 GEMM path (packing: int8_pack.cpp) and
// the path choice (int8_path.cpp). The micro-kernels reading it are declared in int8_kernels.h.
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
#include <vector>

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
// The packed weights a GEMM call reads: `packed` if given (ValueError unless it holds
// int8_packed_bytes(N, K) bytes), else wq packed into tmp (the per-call fallback).
const uint8_t* int8_packed_or_pack(const Mat& wq, const uint8_t* packed, int64_t bytes, std::vector<uint8_t>& tmp);

// Code paths. avx512: vpdpbusd (AVX512-VNNI) for W8A8, AVX-512F FMA for weight-only; avx2: int16
// vpmaddwd for W8A8 (exact for every int8 value, -128 included, unlike the saturating vpmaddubsw)
// and AVX2 FMA for weight-only; portable: plain C++ loops.
// The path follows kf::cpu::isa() (KERNELFLOW_CPU_ISA / set_cpu_isa lower it for every family) unless
// this family is forced on its own (KERNELFLOW_INT8_PATH / set_int8_path); avx512 also needs VNNI,
// so an AVX-512 CPU without it runs the avx2 path.
enum class Int8Path : int { portable = 0, avx2 = 1, avx512 = 2 };
bool int8_path_supported(Int8Path p);
const char* int8_path_name(Int8Path p);
// The path in use: the forced one (set_int8_path or KERNELFLOW_INT8_PATH at load), else the best
// supported at or below kf::cpu::isa().
Int8Path int8_path();
// "auto", "portable", "avx2" or "avx512"; throws std::invalid_argument if this CPU cannot run it.
void set_int8_path(const std::string& name);

}  // namespace kf::cpu
