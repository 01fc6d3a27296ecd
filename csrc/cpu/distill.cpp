// Fused distillation loss + gradient on the CPU: OpenMP over rows; per row an online softmax over
// chunks of classes for s/T, t/T and s (fp32 accumulation), then one sweep that writes the gradient.
#include "cpu/distill.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "common/half.h"

namespace kf::cpu {
namespace {

constexpr int64_t kChunk = 1024;  // classes per chunk: the chunk's a, b, s (12 KB) stay in L1

// std::exp in these loops is a scalar libm call (glibc declares its SIMD variants only under
// -ffast-math); this CPU path is about 2x slower than torch eager, which uses SLEEF.

struct F16 { uint16_t bits; };
struct BF16 { uint16_t bits; };
inline float to_f(float v) { return v; }
inline float to_f(F16 v) { return half_bits_to_float(v.bits); }
inline float to_f(BF16 v) { return bf16_bits_to_float(v.bits); }
inline void from_f(float v, float* o) { *o = v; }
inline void from_f(float v, F16* o) { o->bits = float_to_half_bits(v); }
inline void from_f(float v, BF16* o) { o->bits = float_to_bf16_bits(v); }

// Merge a chunk's (max, sum, weighted sum) into the running (m, z, w). A chunk whose maximum is
// -inf adds nothing (its sums are exp(-inf + inf) = NaN); a row that is -inf everywhere stays
// at m = -inf and ends as NaN, like torch.softmax.
inline void merge(float& m, float& z, float& w, float cm, float cz, float cw) {
  if (cm == -INFINITY) return;
  if (cm > m) { const float f = std::exp(m - cm); z = z * f + cz; w = w * f + cw; m = cm; }
  else { const float f = std::exp(cm - m); z += cz * f; w += cw * f; }
}

template <typename T>
void run(const Mat& s, const Mat& t, const int64_t* labels, float wce, float T_, float kl_weight,
         int64_t ignore_index, float* loss, const Mat& grad) {
  const int64_t rows = s.rows, C = s.cols;
  const float invT = 1.0f / T_;
  std::atomic<int64_t> bad_row{-1};
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t r = 0; r < rows; ++r) {
    const T* sr = static_cast<const T*>(s.data) + r * s.rs;
    const T* tr = static_cast<const T*>(t.data) + r * t.rs;
    T* gr = static_cast<T*>(grad.data) + r * grad.rs;
    const int64_t y = labels[r];
    const bool use_ce = y != ignore_index;
    if (use_ce && (y < 0 || y >= C)) { bad_row.store(r); continue; }
    float a[kChunk], b[kChunk], x[kChunk];
    // running maxima/sums: a = s/T, b = t/T, x = s; wb = sum exp(b - mb) * (b - a) for the KL cross term
    float ma = -INFINITY, za = 0.f, mb = -INFINITY, zb = 0.f, wb = 0.f, mx = -INFINITY, zx = 0.f;
    for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
      const int64_t n = std::min(kChunk, C - c0);
      float cma = -INFINITY, cmb = -INFINITY, cmx = -INFINITY;
      bool nan = false;
      for (int64_t j = 0; j < n; ++j) {
        x[j] = to_f(sr[(c0 + j) * s.cs]);
        a[j] = x[j] * invT;
        b[j] = to_f(tr[(c0 + j) * t.cs]) * invT;
        nan |= (x[j] != x[j]) || (b[j] != b[j]);
        cma = std::max(cma, a[j]); cmb = std::max(cmb, b[j]); cmx = std::max(cmx, x[j]);
      }
      if (nan) { ma = mb = mx = NAN; break; }  // NaN anywhere in the row makes the whole row NaN
      float sa = 0.f, sb = 0.f, swb = 0.f, sx = 0.f;
#pragma omp simd reduction(+ : sa, sb, swb, sx)
      for (int64_t j = 0; j < n; ++j) {
        sa += std::exp(a[j] - cma);
        const float eb = std::exp(b[j] - cmb);
        sb += eb;
        swb += eb == 0.f ? 0.f : eb * (b[j] - a[j]);  // p_t = 0 contributes nothing even against -inf
        sx += std::exp(x[j] - cmx);
      }
      float unused = 0.f;
      merge(ma, za, unused, cma, sa, 0.f);
      merge(mb, zb, wb, cmb, sb, swb);
      merge(mx, zx, unused, cmx, sx, 0.f);
    }
    const float lse_a = ma + std::log(za), lse_b = mb + std::log(zb), lse_x = mx + std::log(zx);
    const float kl = wb / zb - lse_b + lse_a;  // sum p_t (b - a) - lse_b + lse_a
    float row_loss = kl_weight * kl;
    if (use_ce) row_loss += wce * (lse_x - to_f(sr[y * s.cs]));
    loss[r] = row_loss;
    const float gk = kl_weight * invT, gc = use_ce ? wce : 0.f;
    float* g = a;  // a[] is free in sweep 2
    for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
      const int64_t n = std::min(kChunk, C - c0);
      if (C > kChunk) {  // a row of one chunk is still in x[], b[] from sweep 1: read once
        for (int64_t j = 0; j < n; ++j) {
          x[j] = to_f(sr[(c0 + j) * s.cs]);
          b[j] = to_f(tr[(c0 + j) * t.cs]) * invT;
        }
      }
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        const float kd = gk * (std::exp(x[j] * invT - lse_a) - std::exp(b[j] - lse_b));
        g[j] = use_ce ? kd + gc * std::exp(x[j] - lse_x) : kd;
      }
      if (use_ce && y >= c0 && y < c0 + n) g[y - c0] -= gc;
      if constexpr (std::is_same<T, float>::value) {
        std::memcpy(gr + c0, g, n * sizeof(float));
      } else {
        for (int64_t j = 0; j < n; ++j) from_f(g[j], gr + c0 + j);
      }
    }
  }
  const int64_t br = bad_row.load();
  if (br >= 0)
    throw std::invalid_argument("labels: row " + std::to_string(br) + " has label " + std::to_string(labels[br]) +
                                ", outside [0, " + std::to_string(C) + ") and not ignore_index");
}

}  // namespace

void distill_loss(const Mat& s, const Mat& t, const int64_t* labels, const float* ce_weight, float temperature,
                  float kl_weight, int64_t ignore_index, float* loss, const Mat& grad) {
  check_distill_args(s, t, grad, temperature);
  if (s.rows == 0) return;
  require_nonnull(s.data, 1, "student_logits");
  require_nonnull(t.data, 1, "teacher_logits");
  require_nonnull(labels, 1, "labels");
  require_nonnull(ce_weight, 1, "ce_weight");
  require_nonnull(loss, 1, "loss");
  require_nonnull(grad.data, 1, "grad");
  const float w = *ce_weight;
  switch (s.dtype) {
    case DType::f32: return run<float>(s, t, labels, w, temperature, kl_weight, ignore_index, loss, grad);
    case DType::f16: return run<F16>(s, t, labels, w, temperature, kl_weight, ignore_index, loss, grad);
    case DType::bf16: return run<BF16>(s, t, labels, w, temperature, kl_weight, ignore_index, loss, grad);
    default: break;
  }
}

}  // namespace kf::cpu
