// W8A8 int8 GEMM on the CPU over weights packed once (int8_pack.h) into 16-column panels: the
// driver, its threading and the x preparation; the micro-kernels are in int8_kernels_x86.cpp /
// int8_portable.cpp, the epilogue in int8_epilogue.h, the path choice in int8_path.cpp.
//
// Work is split into (group of 4 panels = 64 columns, row tile) blocks scheduled dynamically over
// the OpenMP threads: each block streams its panels from memory once and reuses them from L2 for
// every row of its tile, so a GEMV (M = 1) reads W once at memory speed (the threads split N) and
// a large M is compute bound. Tiles: avx512 6 rows x 4 panels (24 accumulators); avx2 4 rows x 8
// columns (at most 2 rows: the whole 16-column panel, read once); portable 4 rows x 16 columns.
// Sums are exact int32 on every path; the epilogue (scales, bias, activation, fp32) is fused into
// the store of each tile.
#include "cpu/int8_gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/int8_check.h"
#include "cpu/int8_epilogue.h"
#include "cpu/int8_kernels.h"
#include "cpu/int8_pack.h"

namespace kf::cpu {
namespace {

struct AccSink {  // int8_gemm_acc: raw int32 accumulators
  int32_t* acc;
  int64_t N;
  void operator()(int64_t m, int64_t n0, int64_t nv, const int32_t* c) const {
    std::memcpy(acc + m * N + n0, c, nv * sizeof(int32_t));
  }
};

// xq [M, K] int8 -> the x layout of `path`, zero padded: biased u8 (avx512; the bias of a padded
// zero is 0x80), int16 (avx2) or int8 (portable) [M, Kp] rows; amx: int8 A tiles, [Mp / 16][Kp / 64]
// tiles of [16][64] (element (m, k) at ((m / 16) * (Kp / 64) + k / 64) * 1024 + (m % 16) * 64 +
// k % 64; Mp = M rounded up to 16, rows past M zero), so each tile load reads 1 KiB contiguous: with
// plain rows its 16 lines would sit Kp bytes apart, one L1 set for Kp = 4096.
// Plain loops: GCC vectorises them.
AlignedVector<uint8_t> prepare_x8(const Mat& xq, int64_t Kp, Int8Path path) {
  const int64_t M = xq.rows, K = xq.cols;
  const int8_t* xd = static_cast<const int8_t*>(xq.data);
  if (path == Int8Path::amx) {
    const int64_t Mp = (M + 15) / 16 * 16, KB = Kp / 64;
    AlignedVector<uint8_t> buf(Mp * Kp, 0);
#pragma omp parallel for schedule(static) if (M * K > (1 << 18))
    for (int64_t m = 0; m < M; ++m) {
      const int8_t* __restrict xr = xd + m * xq.rs;
      int8_t* __restrict d = reinterpret_cast<int8_t*>(buf.data()) + (m / 16) * KB * 1024 + (m % 16) * 64;
      for (int64_t kb = 0; kb < KB; ++kb) {
        const int64_t k0 = kb * 64, n = std::min<int64_t>(64, K - k0);
        if (n > 0) std::memcpy(d + kb * 1024, xr + k0, n);
      }
    }
    return buf;
  }
  const int64_t es = path == Int8Path::avx2 ? 2 : 1;
  AlignedVector<uint8_t> buf(M * Kp * es);
#pragma omp parallel for schedule(static) if (M * K > (1 << 18))
  for (int64_t m = 0; m < M; ++m) {
    const int8_t* __restrict xr = xd + m * xq.rs;
    if (path == Int8Path::avx512) {
      uint8_t* __restrict d = buf.data() + m * Kp;
      for (int64_t k = 0; k < K; ++k) d[k] = static_cast<uint8_t>(xr[k]) ^ 0x80u;
      for (int64_t k = K; k < Kp; ++k) d[k] = 0x80u;
    } else if (path == Int8Path::avx2) {
      int16_t* __restrict d = reinterpret_cast<int16_t*>(buf.data()) + m * Kp;
      for (int64_t k = 0; k < K; ++k) d[k] = xr[k];
      for (int64_t k = K; k < Kp; ++k) d[k] = 0;
    } else {
      int8_t* __restrict d = reinterpret_cast<int8_t*>(buf.data()) + m * Kp;
      for (int64_t k = 0; k < K; ++k) d[k] = xr[k];
      for (int64_t k = K; k < Kp; ++k) d[k] = 0;
    }
  }
  return buf;
}

constexpr int64_t kGroup = 4;  // panels per block: 64 columns
constexpr int64_t kTileRows = 120;  // rows per block: a multiple of 8, 6 and 4
// Below this many multiply-adds one thread finishes sooner than a parallel region starts (and, on
// a shared machine, sooner than a descheduled second thread comes back).
constexpr int64_t kParallelWork = int64_t(1) << 22;

// One block: rows [m0, m1) x panels [p0, p1) into sink.
template <typename Sink>
void w8a8_block(const uint8_t* xb, int64_t Kp, int64_t K4, const int8_t* W, const int32_t* colsum, int64_t N,
                Int8Path path, int64_t m0, int64_t m1, int64_t p0, int64_t p1, const Sink& sink) {
  alignas(64) int32_t c[kW8A8MaxRows * 64];
  if (path == Int8Path::avx512) {
    // every panel of the block (4) in one pass over 6-row tiles: 24 vpdpbusd chains, and a GEMV
    // reads each panel row once
    const int64_t NP = kGroup, MR = kW8A8MaxRows;
    for (int64_t p = p0; p < p1; p += NP) {
      const int np = static_cast<int>(std::min(NP, p1 - p));
      const int64_t n0 = p * kPackNR, ncols = np * kPackNR, nv = std::min(ncols, N - n0);
      for (int64_t m = m0; m < m1; m += MR) {
        const int mr = static_cast<int>(std::min(MR, m1 - m));
        w8a8_avx512(xb + m * Kp, Kp, mr, W + p * K4 * 64, np, K4, c);
        for (int i = 0; i < mr; ++i) {
          int32_t* ci = c + i * ncols;
          for (int64_t j = 0; j < ncols; ++j)  // undo the u8 bias (modulo 2^32, exact: see the kernel)
            ci[j] = static_cast<int32_t>(static_cast<uint32_t>(ci[j]) - 128u * static_cast<uint32_t>(colsum[n0 + j]));
          sink(m + i, n0, nv, ci);
        }
      }
    }
    return;
  }
  for (int64_t p = p0; p < p1; ++p) {
    const int8_t* panel = W + p * K4 * 64;
    if (path == Int8Path::avx2 && m1 - m0 <= 2) {  // GEMV rows: the whole panel in one pass
      const int64_t n0 = p * kPackNR, nv = std::min<int64_t>(kPackNR, N - n0);
      const int mr = static_cast<int>(m1 - m0);
      w8a8_avx2(reinterpret_cast<const int16_t*>(xb) + m0 * Kp, Kp, mr, panel, -1, K4, c);
      for (int i = 0; i < mr; ++i) sink(m0 + i, n0, nv, c + i * 16);
    } else if (path == Int8Path::avx2) {
      for (int h = 0; h < 2; ++h) {
        const int64_t n0 = p * kPackNR + h * 8;
        if (n0 >= N) break;
        const int64_t nv = std::min<int64_t>(8, N - n0);
        for (int64_t m = m0; m < m1; m += 4) {
          const int mr = static_cast<int>(std::min<int64_t>(4, m1 - m));
          w8a8_avx2(reinterpret_cast<const int16_t*>(xb) + m * Kp, Kp, mr, panel, h, K4, c);
          for (int i = 0; i < mr; ++i) sink(m + i, n0, nv, c + i * 8);
        }
      }
    } else {
      const int64_t n0 = p * kPackNR, nv = std::min<int64_t>(kPackNR, N - n0);
      for (int64_t m = m0; m < m1; m += 4) {
        const int mr = static_cast<int>(std::min<int64_t>(4, m1 - m));
        w8a8_portable(reinterpret_cast<const int8_t*>(xb) + m * Kp, Kp, mr, panel, K4, c);
        for (int i = 0; i < mr; ++i) sink(m + i, n0, nv, c + i * 16);
      }
    }
  }
}

// amx: rows [m0, m1) (m0 a multiple of 32) x panels [p0, p1), 32 x 32 C blocks (2 x 2 tiles; 1 row
// tile or 1 panel at the edges). x (prepare_x8's tiles) is padded to whole 16-row tiles, so a
// partial tile computes on zero rows that the sink never sees. The panel pair (2 K * 16 bytes) stays in L2 for every row tile of the block.
template <typename Sink>
void w8a8_amx_block(const uint8_t* xb, int64_t Kp, int64_t K4, const int8_t* W, int64_t N, int64_t m0, int64_t m1,
                    int64_t p0, int64_t p1, const Sink& sink) {
  alignas(64) int32_t c[32 * 32];
  const int8_t* x = reinterpret_cast<const int8_t*>(xb);
  for (int64_t p = p0; p < p1; p += 2) {
    const int nb = static_cast<int>(std::min<int64_t>(2, p1 - p));
    const int64_t n0 = p * kPackNR, nv = std::min<int64_t>(nb * kPackNR, N - n0);
    for (int64_t m = m0; m < m1; m += 32) {
      const int64_t rows = std::min<int64_t>(32, m1 - m);
      w8a8_amx(x + m * Kp, rows > 16 ? 2 : 1, W + p * K4 * 64, nb, K4, c);
      for (int64_t i = 0; i < rows; ++i) sink(m + i, n0, nv, c + i * 32);
    }
  }
}

// amx blocks: 4 panels (64 columns) x 256 rows, the row chunk outer, so each thread keeps its
// chunk of x (256 K bytes) in L2 while it streams panel groups; W is read ceil(M / 256) times (from
// L3 once it fits there).
constexpr int64_t kAmxGroup = 4;
constexpr int64_t kAmxChunkRows = 256;

template <typename Sink>
void w8a8_driver(const Mat& xq, int64_t N, const uint8_t* packed, Int8Path path, const Sink& sink) {
  // path: by value, amx falls back to avx512 for few rows
  const int64_t M = xq.rows, K = xq.cols, K4 = int8_pack_k4(K), Kp = 4 * K4, Np = int8_pack_panels(N);
  const int8_t* W = reinterpret_cast<const int8_t*>(packed);
  const int32_t* colsum = reinterpret_cast<const int32_t*>(packed + Np * K4 * 64);
  if (M < kAmxMinRows) path = int8_vector_path(path);
  if (path == Int8Path::amx) {
    const AlignedVector<uint8_t> xb = prepare_x8(xq, Kp, path);
    const int64_t ng = (Np + kAmxGroup - 1) / kAmxGroup, nm = (M + kAmxChunkRows - 1) / kAmxChunkRows;
#pragma omp parallel if (M * N * K >= kParallelWork)
    {
      amx_thread_begin();  // the tile configuration is per thread
#pragma omp for collapse(2) schedule(dynamic)
      for (int64_t t = 0; t < nm; ++t)
        for (int64_t g = 0; g < ng; ++g)
          w8a8_amx_block(xb.data(), Kp, K4, W, N, t * kAmxChunkRows, std::min(M, (t + 1) * kAmxChunkRows),
                         g * kAmxGroup, std::min(Np, (g + 1) * kAmxGroup), sink);
      amx_thread_end();
    }
    return;
  }
  const AlignedVector<uint8_t> xb = prepare_x8(xq, Kp, path);
  const int64_t ng = (Np + kGroup - 1) / kGroup, nm = (M + kTileRows - 1) / kTileRows;
#pragma omp parallel for collapse(2) schedule(dynamic) if (M * N * K >= kParallelWork)
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t t = 0; t < nm; ++t)
      w8a8_block(xb.data(), Kp, K4, W, colsum, N, path, t * kTileRows, std::min(M, (t + 1) * kTileRows), g * kGroup,
                 std::min(Np, (g + 1) * kGroup), sink);
}

}  // namespace

// The packed weights to use: the caller's (checked for size), or wq packed into `tmp`.
const uint8_t* int8_packed_or_pack(const Mat& wq, const uint8_t* packed, int64_t bytes, AlignedVector<uint8_t>& tmp) {
  const int64_t need = int8_packed_bytes(wq.rows, wq.cols);
  if (packed) {
    require(bytes == need, "w_packed must hold " + std::to_string(need) + " bytes for w_q of shape [" +
                               std::to_string(wq.rows) + ", " + std::to_string(wq.cols) + "], got " +
                               std::to_string(bytes));
    return packed;
  }
  tmp.resize(need);
  int8_pack(wq, tmp.data());
  return tmp.data();
}

void int8_gemm_acc(const Mat& xq, const Mat& wq, int32_t* acc) {
  check_int8_xq(xq);
  check_int8_wq(xq, wq);
  require_nonnull(acc, xq.rows * wq.rows, "acc");
  if (xq.rows == 0 || wq.rows == 0) return;
  AlignedVector<uint8_t> tmp;
  const uint8_t* p = int8_packed_or_pack(wq, nullptr, 0, tmp);
  w8a8_driver(xq, wq.rows, p, int8_path(), AccSink{acc, wq.rows});
}

void int8_gemm(const Mat& xq, const Mat& wq, const uint8_t* packed, int64_t packed_bytes, const float* row_scale,
               const float* col_scale, const float* bias, int act, const Mat& y) {
  check_int8_gemm_args(xq, wq, row_scale, col_scale, act, y);
  if (xq.rows == 0 || wq.rows == 0) return;
  AlignedVector<uint8_t> tmp;
  const uint8_t* p = int8_packed_or_pack(wq, packed, packed_bytes, tmp);
  const Int8Path path = int8_path();
  int8_by_out(y.dtype, [&](auto o) {
    w8a8_driver(xq, wq.rows, p, path,
                Int8Store<decltype(o)>{row_scale, col_scale, bias, act, y, int8_vector_path(path)});
  });
}

}  // namespace kf::cpu
