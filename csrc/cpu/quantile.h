#pragma once
#include <cmath>
#include <cstdint>

#include "common/array.h"

#if defined(__CUDACC__)
#define KF_QHD __host__ __device__ __forceinline__
#else
#define KF_QHD inline
#endif

namespace kf {
// numpy's "linear" quantile (Hyndman & Fan type 7) of n sorted non-NaN values, given the two
// order statistics it reads. Shared by every backend so they agree with numpy.nanquantile to the
// last bit: h = (n - 1) q; past the last index numpy reads v[n-1] twice with gamma = h + 1, and
// its lerp switches form at gamma = 0.5. +-inf follow the same IEEE arithmetic as numpy (an
// interpolation that touches an infinity can give NaN, exactly as numpy does).
struct QuantileIndex {
  int64_t lo, hi;
  double gamma;
};

KF_QHD QuantileIndex quantile_index(int64_t n, double q) {
  const double h = static_cast<double>(n - 1) * q;
  if (h >= static_cast<double>(n - 1)) return {n - 1, n - 1, h + 1.0};
  const double f = ::floor(h);
  const int64_t lo = static_cast<int64_t>(f);
  return {lo, lo + 1, h - f};
}

KF_QHD double quantile_lerp(double a, double b, double g) {
#if defined(__CUDA_ARCH__)  // explicit roundings: no FMA contraction, the same bits as the host
  const double d = __dsub_rn(b, a);
  return g >= 0.5 ? __dsub_rn(b, __dmul_rn(d, __dsub_rn(1.0, g))) : __dadd_rn(a, __dmul_rn(d, g));
#else
  const double d = b - a;
  return g >= 0.5 ? b - d * (1.0 - g) : a + d * g;
#endif
}
}  // namespace kf

namespace kf::cpu {
// Exact per-column quantiles of x [rows, cols] (float32/float64, any strides), NaN ignored,
// numpy.nanquantile(method="linear") semantics. q [nq] float64 in [0, 1]. Writes out [nq, cols]
// float64 (row i = quantile q[i]); a column with no non-NaN value gives NaN.
void column_quantiles(const Mat& x, const double* q /* [nq] */, int64_t nq, double* out /* [nq, cols] */);
}  // namespace kf::cpu
