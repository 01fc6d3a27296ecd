#pragma once
#include <cstdint>
#include "common/array.h"

namespace kf::cuda {
// Device versions of kf::cpu::int8_gemm / weight_only_gemm (csrc/cpu/int8_gemm.h): same epilogue.
// W8A8 uses int8 tensor-core mma (m16n8k32, int32 accumulation); needs sm_80+.
// Weight-only: a GEMV-style kernel for M <= 16, a tiled fp32 SIMT kernel otherwise.
void int8_gemm(const Mat& xq, const Mat& wq, const float* row_scale /* [M] */, const float* col_scale /* [N] */,
               const float* bias /* [N] or null */, int act, const Mat& y, uintptr_t stream);
void weight_only_gemm(const Mat& x, const Mat& wq, const float* w_scale /* [N] */, const float* bias /* [N] or null */,
                      int act, const Mat& y, uintptr_t stream);
}  // namespace kf::cuda
