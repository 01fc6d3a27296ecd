// Fused LayerNorm / RMSNorm on the CPU: OpenMP over rows, each row read into an fp32 scratch
// row once (16-bit inputs converted through common/half.h), then reduced and written.
#include "cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/half.h"

namespace kf::cpu {
namespace {

// Kind: 0 float32, 2 float16 bits, 3 bfloat16 bits (the DType codes)
template <int Kind>
inline void load_row(const void* base, int64_t r, int64_t n, float* __restrict out) {
  if constexpr (Kind == 0) {
    const float* p = static_cast<const float*>(base) + r * n;
    std::copy(p, p + n, out);
  } else {
    const uint16_t* p = static_cast<const uint16_t*>(base) + r * n;
    for (int64_t j = 0; j < n; ++j) out[j] = Kind == 2 ? half_bits_to_float(p[j]) : bf16_bits_to_float(p[j]);
  }
}

template <int Kind>
inline void store_row(void* base, int64_t r, int64_t n, const float* __restrict v) {
  if constexpr (Kind == 0) {
    std::copy(v, v + n, static_cast<float*>(base) + r * n);
  } else {
    uint16_t* p = static_cast<uint16_t*>(base) + r * n;
    for (int64_t j = 0; j < n; ++j) p[j] = Kind == 2 ? float_to_half_bits(v[j]) : float_to_bf16_bits(v[j]);
  }
}

template <int Kind>
void fwd(const Mat& x, const float* weight, const float* bias, float eps, bool rms, const Mat& y, float* mean,
         float* rstd) {
  const int64_t rows = x.rows, n = x.cols;
  const float inv_n = 1.0f / static_cast<float>(n);
#pragma omp parallel
  {
    std::vector<float> buf(n);  // fp32 scratch row, one per thread
    float* __restrict v = buf.data();
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      load_row<Kind>(x.data, r, n, v);
      float mu = 0.0f;
      if (!rms) {
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < n; ++j) s += v[j];
        mu = s * inv_n;
      }
      // second read of the (cached) row: sum of squared deviations, stable for large means
      float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
      for (int64_t j = 0; j < n; ++j) ss += (v[j] - mu) * (v[j] - mu);
      const float rs = 1.0f / std::sqrt(ss * inv_n + eps);
      if (mean) mean[r] = mu;
      rstd[r] = rs;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        float t = (v[j] - mu) * rs;
        if (weight) t *= weight[j];
        if (bias) t += bias[j];
        v[j] = t;
      }
      store_row<Kind>(y.data, r, n, v);
    }
  }
}

template <int Kind>
void bwd(const Mat& dy, const Mat& x, const float* weight, const float* mean, const float* rstd, bool rms,
         const Mat& dx, float* dwp, float* dbp, int64_t blocks) {
  const int64_t rows = x.rows, n = x.cols;
  const float inv_n = 1.0f / static_cast<float>(n);
  // the row split is fixed by `blocks` (not by the thread count), so the partial sums are reproducible
  const int64_t nb = blocks > 0 ? blocks : std::min<int64_t>(rows, 256);
#pragma omp parallel
  {
    std::vector<float> buf(3 * n);
    float* __restrict xv = buf.data();
    float* __restrict g = xv + n;
    float* __restrict d = g + n;
#pragma omp for schedule(static)
    for (int64_t k = 0; k < nb; ++k) {
      const int64_t r0 = rows * k / nb, r1 = rows * (k + 1) / nb;
      float* __restrict dw = (blocks > 0 && dwp) ? dwp + k * n : nullptr;
      float* __restrict db = (blocks > 0 && dbp) ? dbp + k * n : nullptr;
      for (int64_t r = r0; r < r1; ++r) {
        load_row<Kind>(x.data, r, n, xv);
        load_row<Kind>(dy.data, r, n, d);
        const float mu = (rms || !mean) ? 0.0f : mean[r], rs = rstd[r];
        float c1 = 0.0f, c2 = 0.0f;  // fp32 sums of g and g * xhat
#pragma omp simd reduction(+ : c1, c2)
        for (int64_t j = 0; j < n; ++j) {
          const float xh = (xv[j] - mu) * rs;
          const float gj = weight ? d[j] * weight[j] : d[j];
          xv[j] = xh;
          g[j] = gj;
          c1 += gj;
          c2 += gj * xh;
        }
        const float m1 = rms ? 0.0f : c1 * inv_n, m2 = c2 * inv_n;
        if (dw) {
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) dw[j] += d[j] * xv[j];
        }
        if (db) {
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) db[j] += d[j];
        }
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) g[j] = rs * (g[j] - m1 - xv[j] * m2);
        store_row<Kind>(dx.data, r, n, g);
      }
    }
  }
}

void require_rows(const Mat& m, const Mat& x, const char* arg) {
  require(m.dtype == x.dtype, std::string(arg) + " must have the dtype of x");
  require(m.rows == x.rows && m.cols == x.cols, std::string(arg) + " must have the shape of x");
  require((m.cs == 1 && m.rs == m.cols) || m.rows * m.cols == 0, std::string(arg) + " must be contiguous");
  require_nonnull(m.data, m.rows * m.cols, arg);
}

}  // namespace

void norm_fwd(const Mat& x, const float* weight, const float* bias, double eps, bool rms, const Mat& y,
              float* mean, float* rstd) {
  require_dtype(x.dtype, {DType::f32, DType::f16, DType::bf16}, "x");
  require_rows(x, x, "x");
  require_rows(y, x, "y");
  require(eps >= 0, "eps must be non-negative");
  require(!rms || bias == nullptr, "RMSNorm takes no bias");
  require(rms || mean != nullptr || x.rows == 0, "LayerNorm needs a mean buffer");
  require_nonnull(rstd, x.rows, "rstd");
  if (x.rows == 0 || x.cols == 0) return;
  const float e = static_cast<float>(eps);
  switch (x.dtype) {
    case DType::f32: return fwd<0>(x, weight, bias, e, rms, y, mean, rstd);
    case DType::f16: return fwd<2>(x, weight, bias, e, rms, y, mean, rstd);
    default: return fwd<3>(x, weight, bias, e, rms, y, mean, rstd);
  }
}

void norm_bwd(const Mat& dy, const Mat& x, const float* weight, const float* mean, const float* rstd, bool rms,
              const Mat& dx, float* dweight_partial, float* dbias_partial, int64_t blocks) {
  require_dtype(x.dtype, {DType::f32, DType::f16, DType::bf16}, "x");
  require_rows(x, x, "x");
  require_rows(dy, x, "dy");
  require_rows(dx, x, "dx");
  require(blocks >= 0 && blocks <= std::max<int64_t>(x.rows, 1), "blocks must be in [0, rows]");
  require(rms || mean != nullptr || x.rows == 0, "LayerNorm needs the saved mean");
  require_nonnull(rstd, x.rows, "rstd");
  if (x.rows == 0 || x.cols == 0) return;
  switch (x.dtype) {
    case DType::f32: return bwd<0>(dy, x, weight, mean, rstd, rms, dx, dweight_partial, dbias_partial, blocks);
    case DType::f16: return bwd<2>(dy, x, weight, mean, rstd, rms, dx, dweight_partial, dbias_partial, blocks);
    default: return bwd<3>(dy, x, weight, mean, rstd, rms, dx, dweight_partial, dbias_partial, blocks);
  }
}

}  // namespace kf::cpu
