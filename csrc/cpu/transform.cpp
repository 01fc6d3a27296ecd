// Fused impute -> clip -> scale on the CPU: OpenMP over rows, vectorised across columns.
#include "cpu/transform.h"

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/half.h"

namespace kf::cpu {
namespace {

// OutKind: 0 float32, 1 float64, 2 float16 bits, 3 bfloat16 bits
template <typename T, typename C, int OutKind>
void run(const Mat& x, const double* params, const Mat& out) {
  const int64_t rows = x.rows, cols = x.cols;
  // parameters converted once to the compute type; the shift is split into hi + lo so float
  // compute keeps the digits a single fp32 shift would lose ((v - hi) is exact near the shift)
  std::vector<C> p(7 * cols);
  for (int64_t i = 0; i < 6 * cols; ++i) p[i] = static_cast<C>(params[i]);
  for (int64_t j = 0; j < cols; ++j)
    p[6 * cols + j] = static_cast<C>(params[3 * cols + j] - static_cast<double>(p[3 * cols + j]));
  const C* __restrict fill = p.data();
  const C* __restrict lo = fill + cols;
  const C* __restrict hi = lo + cols;
  const C* __restrict shift = hi + cols;
  const C* __restrict inv = shift + cols;
  const C* __restrict off = inv + cols;
  const C* __restrict shift_lo = off + cols;
  const T* xd = static_cast<const T*>(x.data);
  const int64_t xrs = x.rs, xcs = x.cs, ors = out.rs;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict xr = xd + r * xrs;
    if constexpr (OutKind == 0 || OutKind == 1) {
      using O = std::conditional_t<OutKind == 0, float, double>;
      O* __restrict orow = static_cast<O*>(out.data) + r * ors;
      if (xcs == 1) {
#pragma omp simd
        for (int64_t j = 0; j < cols; ++j) {
          // every operand in a register first: the selects then if-convert and vectorise
          const C x0 = static_cast<C>(xr[j]), f = fill[j], l = lo[j], h = hi[j];
          C v = (x0 != x0) ? f : x0;
          v = v < l ? l : v;  // comparisons are false for NaN: an unimputed NaN stays
          v = v > h ? h : v;
          orow[j] = static_cast<O>(((v - shift[j]) - shift_lo[j]) * inv[j] + off[j]);
        }
      } else {
        for (int64_t j = 0; j < cols; ++j) {
          C v = static_cast<C>(xr[j * xcs]);
          v = (v != v) ? fill[j] : v;
          v = v < lo[j] ? lo[j] : v;
          v = v > hi[j] ? hi[j] : v;
          orow[j] = static_cast<O>(((v - shift[j]) - shift_lo[j]) * inv[j] + off[j]);
        }
      }
    } else {
      uint16_t* __restrict orow = static_cast<uint16_t*>(out.data) + r * ors;
      for (int64_t j = 0; j < cols; ++j) {
        C v = static_cast<C>(xr[j * xcs]);
        v = (v != v) ? fill[j] : v;
        v = v < lo[j] ? lo[j] : v;
        v = v > hi[j] ? hi[j] : v;
        const float y = static_cast<float>(((v - shift[j]) - shift_lo[j]) * inv[j] + off[j]);
        orow[j] = OutKind == 2 ? float_to_half_bits(y) : float_to_bf16_bits(y);
      }
    }
  }
}

template <typename T>
void dispatch_out(const Mat& x, const double* params, const Mat& out) {
  using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
  switch (out.dtype) {
    // float64 input is computed in float64 and rounded once to the output type
    case DType::f32: return run<T, C, 0>(x, params, out);
    case DType::f64: return run<T, double, 1>(x, params, out);
    case DType::f16: return run<T, C, 2>(x, params, out);
    case DType::bf16: return run<T, C, 3>(x, params, out);
    default: break;
  }
}

}  // namespace

void numeric_transform(const Mat& x, const double* params, const Mat& out) {
  require_dtype(x.dtype, {DType::f32, DType::f64}, "x");
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require(out.rows == x.rows && out.cols == x.cols, "out must have the shape of x");
  require(out.cs == 1 && out.rs >= out.cols, "out must have unit column stride and row stride >= cols");
  require_nonnull(x.data, x.rows * x.cols, "x");
  require_nonnull(out.data, out.rows * out.cols, "out");
  require_nonnull(params, x.cols, "params");
  if (x.dtype == DType::f32) dispatch_out<float>(x, params, out);
  else dispatch_out<double>(x, params, out);
}

}  // namespace kf::cpu
