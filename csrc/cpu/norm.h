#pragma once
#include <cstdint>

#include "common/array.h"

namespace kf {
// Argument checks shared by the CPU and CUDA launchers.
inline void check_norm_fwd_args(const Mat& x, const float* bias, double eps, bool rms, const Mat& y,
                                const float* mean, const float* rstd) {
  require_dtype(x.dtype, {DType::f32, DType::f16, DType::bf16}, "x");
  require_contiguous_like(x, x, "x");
  require_contiguous_like(y, x, "y");
  require(eps >= 0, "eps must be non-negative");
  require(!rms || bias == nullptr, "RMSNorm takes no bias");
  require(rms || mean != nullptr || x.rows == 0, "LayerNorm needs a mean buffer");
  require_nonnull(rstd, x.rows, "rstd");
}

inline void check_norm_bwd_args(const Mat& dy, const Mat& x, const float* mean, const float* rstd, bool rms,
                                const Mat& dx, int64_t blocks) {
  require_dtype(x.dtype, {DType::f32, DType::f16, DType::bf16}, "x");
  require_contiguous_like(x, x, "x");
  require_contiguous_like(dy, x, "dy");
  require_contiguous_like(dx, x, "dx");
  require(blocks >= 0 && blocks <= (x.rows > 1 ? x.rows : 1) && blocks < (int64_t(1) << 31), "blocks must be in [0, rows]");
  require(rms || mean != nullptr || x.rows == 0, "LayerNorm needs the saved mean");
  require_nonnull(rstd, x.rows, "rstd");
}
}  // namespace kf

namespace kf::cpu {
// The code path the kernels take now: "avx512", "avx2" or "portable" (common/cpu_isa.h).
const char* norm_cpu_path();

// LayerNorm (rms = false) / RMSNorm (rms = true) forward over each row of x, statistics in fp32:
//   y = (x - mean) * rstd * weight + bias   (RMSNorm: mean = 0, rstd = 1 / sqrt(mean(x^2) + eps), no bias)
// x, y [rows, hidden] contiguous float32/bfloat16/float16 (same dtype); weight, bias [hidden] fp32
// or null; mean [rows] fp32 (null allowed for RMSNorm), rstd [rows] fp32.
void norm_fwd(const Mat& x, const float* weight, const float* bias, double eps, bool rms, const Mat& y,
              float* mean, float* rstd);

// Backward from the saved statistics, fp32 accumulation; with xhat = (x - mean) * rstd, g = weight * dy:
//   dx = rstd * (g - mean_row(g) - xhat * mean_row(g * xhat))   (RMSNorm: without mean_row(g))
// dy, x, dx [rows, hidden] contiguous, same dtype; weight [hidden] fp32 or null; mean, rstd [rows] fp32
// (mean null allowed for RMSNorm). When blocks > 0, rows are split into `blocks` contiguous ranges
// and range k writes dweight_partial[k, :] = sum(dy * xhat), dbias_partial[k, :] = sum(dy) over its
// rows ([blocks, hidden] fp32 each, either may be null; overwritten, so they need not be zeroed):
// the caller sums them, deterministically (the split does not depend on the thread count).
void norm_bwd(const Mat& dy, const Mat& x, const float* weight, const float* mean, const float* rstd, bool rms,
              const Mat& dx, float* dweight_partial, float* dbias_partial, int64_t blocks);
}  // namespace kf::cpu
