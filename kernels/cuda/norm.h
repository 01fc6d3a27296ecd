#pragma once
#include <cstdint>

#include "common/array.h"

namespace kf::cuda {
// Device versions of kf::cpu::norm_fwd / norm_bwd (same formulas, same buffers, all device
// pointers). norm_bwd runs `blocks` thread blocks when blocks > 0, block k writing row k of the
// [blocks, hidden] fp32 partial sums (overwritten); with blocks == 0 no weight / bias gradient is formed.
void norm_fwd(const Mat& x, const float* weight, const float* bias, double eps, bool rms, const Mat& y,
              float* mean, float* rstd, uintptr_t stream);
void norm_bwd(const Mat& dy, const Mat& x, const float* weight, const float* mean, const float* rstd, bool rms,
              const Mat& dx, float* dweight_partial, float* dbias_partial, int64_t blocks, uintptr_t stream);
}  // namespace kf::cuda
