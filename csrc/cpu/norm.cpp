// Fused LayerNorm / RMSNorm on the CPU: OpenMP over rows; float32 rows are used in place, 16-bit
// rows are converted once into an fp32 scratch row (common/half.h) and the result converted back.
// Row statistics: fp32 SIMD sums over 256-value chunks, accumulated across chunks in fp64.
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

// The fp32 view of row r: the row itself for float32, else its conversion into `buf`.
template <int Kind>
inline const float* row_in(const void* base, int64_t r, int64_t n, float* buf) {
  if constexpr (Kind == 0) return static_cast<const float*>(base) + r * n;
  load_row<Kind>(base, r, n, buf);
  return buf;
}

// Where to compute row r of an output: in place for float32, else in `buf` (then store_row).
template <int Kind>
inline float* row_out(void* base, int64_t r, int64_t n, float* buf) {
  if constexpr (Kind == 0) return static_cast<float*>(base) + r * n;
  return buf;
}

// Row sums: fp32 SIMD partial sums over chunks of kSumChunk values, the chunk sums accumulated
// in fp64, so the rounding error does not grow with the row length (a 2^21-wide row with mean
// 1e4 summed in one fp32 running sum per lane loses every digit of its deviations).
constexpr int64_t kSumChunk = 256;

template <typename F>
inline double row_sum(int64_t n, F f) {
  double total = 0.0;
  for (int64_t j0 = 0; j0 < n; j0 += kSumChunk) {
    const int64_t j1 = std::min(n, j0 + kSumChunk);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = j0; j < j1; ++j) s += f(j);
    total += static_cast<double>(s);
  }
  return total;
}

// Two row sums at once (the backward's sum(g) and sum(g * xhat)), same chunking.
template <typename F, typename G>
inline void row_sum2(int64_t n, F f, G g, double& a, double& b) {
  a = 0.0;
  b = 0.0;
  for (int64_t j0 = 0; j0 < n; j0 += kSumChunk) {
    const int64_t j1 = std::min(n, j0 + kSumChunk);
    float s = 0.0f, t = 0.0f;
#pragma omp simd reduction(+ : s, t)
    for (int64_t j = j0; j < j1; ++j) {
      s += f(j);
      t += g(j);
    }
    a += static_cast<double>(s);
    b += static_cast<double>(t);
  }
}

template <int Kind>
void fwd(const Mat& x, const float* weight, const float* bias, float eps, bool rms, const Mat& y, float* mean,
         float* rstd) {
  const int64_t rows = x.rows, n = x.cols;
  // absent weight / bias become ones / zeros: the inner loops stay branch-free
  std::vector<float> ones, zeros;
  if (!weight) { ones.assign(n, 1.0f); weight = ones.data(); }
  if (!bias) { zeros.assign(n, 0.0f); bias = zeros.data(); }
  const float* __restrict w = weight;
  const float* __restrict b = bias;
#pragma omp parallel
  {
    std::vector<float> buf(Kind == 0 ? 0 : 2 * n);  // fp32 scratch rows for 16-bit data, one per thread
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* __restrict v = row_in<Kind>(x.data, r, n, buf.data());
      float* __restrict o = row_out<Kind>(y.data, r, n, buf.data() + n);
      float mu = 0.0f;
      if (!rms) mu = static_cast<float>(row_sum(n, [&](int64_t j) { return v[j]; }) / static_cast<double>(n));
      // deviations from the fp32 mean on a second (cached) read (no cancellation for large
      // means), corrected by their own mean (the mean's fp32 rounding): var = E[d^2] - E[d]^2
      double s1 = 0.0, s2 = 0.0;
      row_sum2(n, [&](int64_t j) { return v[j] - mu; }, [&](int64_t j) { return (v[j] - mu) * (v[j] - mu); }, s1, s2);
      const double m1 = rms ? 0.0 : s1 / static_cast<double>(n);
      const double var = std::max(s2 / static_cast<double>(n) - m1 * m1, 0.0);
      mu = static_cast<float>(static_cast<double>(mu) + m1);
      const float rs = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
      if (mean) mean[r] = mu;
      rstd[r] = rs;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) o[j] = (v[j] - mu) * rs * w[j] + b[j];
      if constexpr (Kind != 0) store_row<Kind>(y.data, r, n, o);
    }
  }
}

template <int Kind>
void bwd(const Mat& dy, const Mat& x, const float* weight, const float* mean, const float* rstd, bool rms,
         const Mat& dx, float* dwp, float* dbp, int64_t blocks) {
  const int64_t rows = x.rows, n = x.cols;
  std::vector<float> ones;
  if (!weight) { ones.assign(n, 1.0f); weight = ones.data(); }
  const float* __restrict w = weight;
  // the row split is fixed by `blocks` (not by the thread count), so the partial sums are reproducible
  const int64_t nb = blocks > 0 ? blocks : std::min<int64_t>(rows, 256);
#pragma omp parallel
  {
    // fp32 scratch: x and dy rows for 16-bit data, dx for 16-bit data, and partial sums nobody asked for
    std::vector<float> buf((Kind == 0 ? 0 : 3 * n) + (blocks > 0 && dwp && dbp ? 0 : 2 * n), 0.0f);
    float* scratch = buf.data();
    float* sink = scratch + (Kind == 0 ? 0 : 3 * n);
#pragma omp for schedule(static)
    for (int64_t k = 0; k < nb; ++k) {
      const int64_t r0 = rows * k / nb, r1 = rows * (k + 1) / nb;
      float* __restrict dw = (blocks > 0 && dwp) ? dwp + k * n : sink;
      float* __restrict db = (blocks > 0 && dbp) ? dbp + k * n : sink + n;
      for (int64_t r = r0; r < r1; ++r) {
        const float* __restrict xv = row_in<Kind>(x.data, r, n, scratch);
        const float* __restrict d = row_in<Kind>(dy.data, r, n, scratch + n);
        float* __restrict o = row_out<Kind>(dx.data, r, n, scratch + 2 * n);
        const float mu = (rms || !mean) ? 0.0f : mean[r], rs = rstd[r];
        double c1 = 0.0, c2 = 0.0;  // sums of g and g * xhat (fp32 chunks, fp64 across chunks)
        row_sum2(n, [&](int64_t j) { return d[j] * w[j]; }, [&](int64_t j) { return d[j] * w[j] * ((xv[j] - mu) * rs); },
                 c1, c2);
        const float m1 = rms ? 0.0f : static_cast<float>(c1 / static_cast<double>(n));
        const float m2 = static_cast<float>(c2 / static_cast<double>(n));
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const float xh = (xv[j] - mu) * rs;
          o[j] = rs * (d[j] * w[j] - m1 - xh * m2);
          dw[j] += d[j] * xh;
          db[j] += d[j];
        }
        if constexpr (Kind != 0) store_row<Kind>(dx.data, r, n, o);
      }
    }
  }
}

}  // namespace

void norm_fwd(const Mat& x, const float* weight, const float* bias, double eps, bool rms, const Mat& y,
              float* mean, float* rstd) {
  check_norm_fwd_args(x, bias, eps, rms, y, mean, rstd);
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
  check_norm_bwd_args(dy, x, mean, rstd, rms, dx, blocks);
  if (x.rows == 0 || x.cols == 0) return;
  switch (x.dtype) {
    case DType::f32: return bwd<0>(dy, x, weight, mean, rstd, rms, dx, dweight_partial, dbias_partial, blocks);
    case DType::f16: return bwd<2>(dy, x, weight, mean, rstd, rms, dx, dweight_partial, dbias_partial, blocks);
    default: return bwd<3>(dy, x, weight, mean, rstd, rms, dx, dweight_partial, dbias_partial, blocks);
  }
}

}  // namespace kf::cpu
