// The portable (plain C++) int8 micro-kernels, same contracts as the ISA ones (int8_kernels.h);
// the reference path every CPU can run, exact like the others.
#include "cpu/int8_kernels.h"

namespace kf::cpu {

// Partial sums per (column, k mod 4): |partial| <= (K / 4) * 2^14, the total <= K * 2^14 < 2^31.
void w8a8_portable(const int8_t* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, int32_t* c) {
  for (int i = 0; i < mr; ++i) {
    const int8_t* xr = x + i * ld;
    int32_t acc[64] = {};
    for (int64_t k4 = 0; k4 < K4; ++k4)
      for (int t = 0; t < 64; ++t) acc[t] += int32_t(xr[4 * k4 + (t & 3)]) * int32_t(panel[k4 * 64 + t]);
    for (int j = 0; j < 16; ++j) c[i * 16 + j] = (acc[4 * j] + acc[4 * j + 1]) + (acc[4 * j + 2] + acc[4 * j + 3]);
  }
}

// fp32 accumulation in the same (column, k mod 4) lanes as the vector kernels.
void wo_portable(const float* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, float* c) {
  for (int i = 0; i < mr; ++i) {
    const float* xr = x + i * ld;
    float acc[64] = {};
    for (int64_t k4 = 0; k4 < K4; ++k4)
      for (int t = 0; t < 64; ++t) acc[t] += xr[4 * k4 + (t & 3)] * float(panel[k4 * 64 + t]);
    for (int j = 0; j < 16; ++j) c[i * 16 + j] = (acc[4 * j] + acc[4 * j + 1]) + (acc[4 * j + 2] + acc[4 * j + 3]);
  }
}

}  // namespace kf::cpu
