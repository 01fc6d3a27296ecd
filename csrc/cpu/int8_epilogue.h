// The fused epilogue of the CPU int8 GEMM drivers: one output row segment from its accumulators.
// float32 output takes the vector epilogues of int8_kernels.h; float16 / bfloat16 output the
// scalar loop below, the same fp32 formula (left to right, no fused multiply-add: this header is
// compiled at baseline x86-64, which has no FMA to contract into) rounded once to 16 bits.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "common/half.h"
#include "cpu/int8_kernels.h"
#include "cpu/int8_pack.h"

namespace kf::cpu {

inline float int8_activate(float v, int act) {
  if (act == 1) return v < 0.f ? 0.f : v;  // NaN stays NaN, as torch.relu
  if (act == 2) return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f));
  return v;
}

// Stores y[m, n0 : n0 + nv] from c [nv] (int32 W8A8 sums with row scales, or fp32 weight-only sums).
// O: float, uint16_t (float16 bits) or int16_t (bfloat16 bits).
template <typename O>
struct Int8Store {
  const float* rs;    // [M] row scales, null for weight-only
  const float* cs;    // [N]
  const float* bias;  // [N] or null
  int act;
  Mat y;
  Int8Path path;
  template <typename A>
  void operator()(int64_t m, int64_t n0, int64_t nv, const A* c) const {
    const float r = rs ? rs[m] : 1.f;
    if constexpr (std::is_same<O, float>::value) {
      if (path != Int8Path::portable) {
        const EpiArgs a{r, cs + n0, bias ? bias + n0 : nullptr, act};
        float* yr = static_cast<float*>(y.data) + m * y.rs + n0;
        if constexpr (std::is_same<A, int32_t>::value) {
          if (path == Int8Path::avx512) epilogue_i32_avx512(c, nv, a, yr);
          else epilogue_i32_avx2(c, nv, a, yr);
        } else {
          if (path == Int8Path::avx512) epilogue_f32_avx512(c, nv, a, yr);
          else epilogue_f32_avx2(c, nv, a, yr);
        }
        return;
      }
    }
    for (int64_t j = 0; j < nv; ++j) {
      const int64_t n = n0 + j;
      float v = rs ? static_cast<float>(c[j]) * r * cs[n] : static_cast<float>(c[j]) * cs[n];
      if (bias) v += bias[n];
      v = int8_activate(v, act);
      const int64_t off = m * y.rs + n;
      if constexpr (std::is_same<O, float>::value) static_cast<float*>(y.data)[off] = v;
      else if constexpr (std::is_same<O, uint16_t>::value) static_cast<uint16_t*>(y.data)[off] = float_to_half_bits(v);
      else static_cast<int16_t*>(y.data)[off] = static_cast<int16_t>(float_to_bf16_bits(v));
    }
  }
};

template <typename F>
void int8_by_out(DType d, F&& f) {
  switch (d) {
    case DType::f32: f(float{}); break;
    case DType::f16: f(uint16_t{}); break;
    default: f(int16_t{}); break;
  }
}

}  // namespace kf::cpu
