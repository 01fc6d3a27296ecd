// Row-wise symmetric int8 quantization on the CPU: OpenMP over rows, the K loop vectorised.
#include "cpu/quant.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/half.h"

namespace kf::cpu {
namespace {

template <typename T> inline float load(const T* p) { return static_cast<float>(*p); }
struct F16 { uint16_t b; };
struct BF16 { uint16_t b; };
template <> inline float load<F16>(const F16* p) { return half_bits_to_float(p->b); }
template <> inline float load<BF16>(const BF16* p) { return bf16_bits_to_float(p->b); }

// Round half to even then saturate; rint uses the default (to-nearest-even) rounding mode.
inline int8_t q8(float v) {
  v = std::nearbyint(v);
  v = v < -127.f ? -127.f : (v > 127.f ? 127.f : v);
  return static_cast<int8_t>(v);
}

template <typename T>
void rows_impl(const Mat& x, const Mat& q, float* scale) {
  const T* xd = static_cast<const T*>(x.data);
  int8_t* qd = static_cast<int8_t*>(q.data);
  const int64_t M = x.rows, K = x.cols;
#pragma omp parallel if (M * K > (1 << 16))  // small inputs: one thread beats starting a team
  {
    std::vector<float> buf(K);
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      const T* xr = xd + m * x.rs;
      float* __restrict b = buf.data();
      for (int64_t k = 0; k < K; ++k) b[k] = load<T>(xr + k * x.cs);
      float amax = 0.f;
      bool bad = false;
      for (int64_t k = 0; k < K; ++k) {
        const float a = std::fabs(b[k]);
        bad |= !(a <= std::numeric_limits<float>::max());  // NaN or inf
        amax = a > amax ? a : amax;
      }
      int8_t* __restrict qr = qd + m * q.rs;
      if (bad) {
        scale[m] = std::numeric_limits<float>::quiet_NaN();
        for (int64_t k = 0; k < K; ++k) qr[k] = 0;
        continue;
      }
      const bool tiny = !(amax >= kQuantMinAbsmax);
      const float inv = tiny ? 1.f : 127.f / amax;
      scale[m] = tiny ? 1.f : amax / 127.f;
      for (int64_t k = 0; k < K; ++k) qr[k] = q8(b[k] * inv);
    }
  }
}

template <typename T>
void static_impl(const Mat& x, float inv, const Mat& q) {
  const T* xd = static_cast<const T*>(x.data);
  int8_t* qd = static_cast<int8_t*>(q.data);
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < x.rows; ++m) {
    const T* xr = xd + m * x.rs;
    int8_t* __restrict qr = qd + m * q.rs;
    for (int64_t k = 0; k < x.cols; ++k) {
      const float v = load<T>(xr + k * x.cs);
      qr[k] = v != v ? int8_t(0) : q8(v * inv);
    }
  }
}

template <typename O>
void deq_impl(const Mat& q, const float* scale, const Mat& out) {
  const int8_t* qd = static_cast<const int8_t*>(q.data);
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < q.rows; ++m) {
    const int8_t* qr = qd + m * q.rs;
    const float s = scale[m];
    O* __restrict o = static_cast<O*>(out.data) + m * out.rs;
    for (int64_t k = 0; k < q.cols; ++k) {
      const float y = static_cast<float>(qr[k * q.cs]) * s;
      if constexpr (std::is_same<O, F16>::value) o[k].b = float_to_half_bits(y);
      else if constexpr (std::is_same<O, BF16>::value) o[k].b = float_to_bf16_bits(y);
      else o[k] = static_cast<O>(y);
    }
  }
}

void check_q(const Mat& x, const Mat& q) {
  require_dtype(x.dtype, {DType::f32, DType::f16, DType::bf16}, "x");
  require_dtype(q.dtype, {DType::i8}, "q");
  require(q.rows == x.rows && q.cols == x.cols, "q must have the shape of x");
  require(q.cs == 1 && q.rs >= q.cols, "q must have unit column stride");
  require_nonnull(x.data, x.rows * x.cols, "x");
  require_nonnull(q.data, q.rows * q.cols, "q");
}

}  // namespace

void quantize_rows(const Mat& x, const Mat& q, float* scale) {
  check_q(x, q);
  require_nonnull(scale, x.rows, "scale");
  switch (x.dtype) {
    case DType::f32: return rows_impl<float>(x, q, scale);
    case DType::f16: return rows_impl<F16>(x, q, scale);
    default: return rows_impl<BF16>(x, q, scale);
  }
}

void quantize_static(const Mat& x, const float* scale, const Mat& q) {
  check_q(x, q);
  require_nonnull(scale, 1, "scale");
  require(*scale > 0.f && std::isfinite(*scale), "scale must be positive and finite");
  const float inv = 1.f / *scale;
  switch (x.dtype) {
    case DType::f32: return static_impl<float>(x, inv, q);
    case DType::f16: return static_impl<F16>(x, inv, q);
    default: return static_impl<BF16>(x, inv, q);
  }
}

void dequantize_rows(const Mat& q, const float* scale, const Mat& out) {
  require_dtype(q.dtype, {DType::i8}, "q");
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require(out.rows == q.rows && out.cols == q.cols, "out must have the shape of q");
  require(out.cs == 1 && out.rs >= out.cols, "out must have unit column stride");
  require_nonnull(q.data, q.rows * q.cols, "q");
  require_nonnull(scale, q.rows, "scale");
  switch (out.dtype) {
    case DType::f32: return deq_impl<float>(q, scale, out);
    case DType::f64: return deq_impl<double>(q, scale, out);
    case DType::f16: return deq_impl<F16>(q, scale, out);
    default: return deq_impl<BF16>(q, scale, out);
  }
}

}  // namespace kf::cpu
