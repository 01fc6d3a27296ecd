// The CPU int8 GEMM family. Files, one idea each: int8_check.h (argument checks, shared with the
// CUDA launcher), int8_pack.h / int8_pack.cpp (the packed weight layout), int8_path.cpp (which code
// path runs), int8_kernels.h (micro-kernel and epilogue contracts) with int8_kernels_x86.cpp (AVX2,
// AVX-512) and int8_portable.cpp, int8_epilogue.h (the fused store), int8_gemm.cpp (the W8A8
// driver and its threading), int8_weight_only.cpp (the weight-only driver).
#pragma once
#include <cstdint>
#include "common/array.h"

namespace kf {
// Largest K for which int8 x int8 products summed in int32 cannot overflow: 128 * 128 * K < 2^31.
constexpr int64_t kInt8GemmMaxK = 131071;
// Epilogue activation codes (shared by every backend).
enum class Act : int { none = 0, relu = 1, gelu = 2 };  // gelu: exact erf form; relu keeps NaN (as torch.relu)
}  // namespace kf

namespace kf::cpu {
// W8A8: y[M, N] = act(float(sum_k xq[m,k] * wq[n,k]) * row_scale[m] * col_scale[n] + bias[n]).
// xq [M, K] int8 (unit column stride), wq [N, K] int8 (unit column stride), sums exact in int32
// (K <= kInt8GemmMaxK), epilogue in fp32 evaluated left to right; y [M, N] float32/float16/bfloat16,
// unit column stride. packed: wq in the layout of cpu/int8_pack.h (packed_bytes long), or null to
// pack per call.
void int8_gemm(const Mat& xq, const Mat& wq, const uint8_t* packed, int64_t packed_bytes,
               const float* row_scale /* [M] */, const float* col_scale /* [N] */,
               const float* bias /* [N] or null */, int act, const Mat& y);
// Exact int32 accumulators only (no epilogue): acc [M, N] int32 contiguous; for tests.
void int8_gemm_acc(const Mat& xq, const Mat& wq, int32_t* acc);
// Weight-only: y[M, N] = act((sum_k x[m,k] * float(wq[n,k])) * w_scale[n] + bias[n]), fp32 accumulation.
// x [M, K] float32/float16/bfloat16 (any strides), wq [N, K] int8 (unit column stride), packed as above.
void weight_only_gemm(const Mat& x, const Mat& wq, const uint8_t* packed, int64_t packed_bytes,
                      const float* w_scale /* [N] */, const float* bias /* [N] or null */, int act, const Mat& y);
}  // namespace kf::cpu
