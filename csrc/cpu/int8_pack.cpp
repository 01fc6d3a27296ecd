// Packs int8 weights once into the panel layout of int8_pack.h (with the column sums the VNNI
// path's u8 correction needs).
#include "cpu/int8_pack.h"

#include <cstring>

namespace kf::cpu {

void int8_pack(const Mat& wq, uint8_t* out) {
  const int64_t N = wq.rows, K = wq.cols, K4 = int8_pack_k4(K), Np = int8_pack_panels(N);
  const int8_t* wd = static_cast<const int8_t*>(wq.data);
  int8_t* dst = reinterpret_cast<int8_t*>(out);
  int32_t* colsum = reinterpret_cast<int32_t*>(out + Np * K4 * 64);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < Np; ++p) {
    int8_t* pd = dst + p * K4 * 64;
    std::memset(pd, 0, K4 * 64);
    for (int64_t j = 0; j < kPackNR; ++j) {
      const int64_t n = p * kPackNR + j;
      int32_t sum = 0;  // |sum| <= 128 K < 2^31
      if (n < N) {
        const int8_t* wr = wd + n * wq.rs;
        for (int64_t k = 0; k < K; ++k) {
          pd[(k >> 2) * 64 + j * 4 + (k & 3)] = wr[k];
          sum += wr[k];
        }
      }
      colsum[p * kPackNR + j] = sum;
    }
  }
}

}  // namespace kf::cpu
