// The column-quantile family's element maths and argument checks, shared by the CPU, CUDA and
// sparse kernels: numpy's "linear" rule (Hyndman & Fan type 7) and the order-preserving map of a
// float onto an unsigned key that the radix selections (CPU and GPU) histogram.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/array.h"

#if defined(__CUDACC__)
#define KF_QHD __host__ __device__ __forceinline__
#else
#define KF_QHD inline
#endif

namespace kf {

// numpy's linear quantile of n sorted non-NaN values, given the two order statistics it reads.
// Shared by every backend so they agree with numpy.nanquantile to the last bit: h = (n - 1) q;
// past the last index numpy reads v[n-1] twice with gamma = h + 1, and its lerp switches form at
// gamma = 0.5. +-inf follow the same IEEE arithmetic as numpy (an interpolation that touches an
// infinity can give NaN, exactly as numpy does).
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

// Order-preserving keys for the radix selections of the CPU and the GPU: negative floats have
// every bit flipped, non-negative ones only the sign bit, so unsigned order is value order (-0.0
// just below +0.0). NaN must be skipped by the caller.
KF_QHD uint32_t float_key(float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
KF_QHD uint64_t float_key(double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}
KF_QHD float key_value(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k ^ 0x80000000u) : ~k;
  float v;
  memcpy(&v, &u, 4);
  return v;
}
KF_QHD double key_value(uint64_t k) {
  const uint64_t u = (k & 0x8000000000000000ull) ? (k ^ 0x8000000000000000ull) : ~k;
  double v;
  memcpy(&v, &u, 8);
  return v;
}

// x [rows, cols] float32/float64, any strides; q [nq] float64 in [0, 1]; out [nq, cols] float64.
// check_q: whether q is readable here (host memory); the CUDA launcher gets a device q, which the
// Python op has checked.
inline void check_column_quantiles_args(const Mat& x, const double* q, int64_t nq, const double* out, bool check_q) {
  require_dtype(x.dtype, {DType::f32, DType::f64}, "x");
  require(x.rows >= 0 && x.cols >= 0, "x must have non-negative shape");
  require(nq >= 0, "q must have a non-negative length");
  require_nonnull(x.data, x.rows * x.cols, "x");
  require_nonnull(q, nq, "q");
  require_nonnull(out, nq * x.cols, "out");
  if (check_q)
    for (int64_t i = 0; i < nq; ++i) require(q[i] >= 0.0 && q[i] <= 1.0, "q values must lie in [0, 1]");
}

}  // namespace kf
