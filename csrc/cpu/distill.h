#pragma once
#include <cstdint>
#include "common/array.h"

#include <cmath>

namespace kf {
// Argument checks shared by the CPU and CUDA launchers.
inline void check_distill_args(const Mat& s, const Mat& t, const Mat& grad, float temperature) {
  require_dtype(s.dtype, {DType::f32, DType::f16, DType::bf16}, "student_logits");
  require(t.dtype == s.dtype, "teacher_logits must have the dtype of student_logits");
  require(grad.dtype == s.dtype, "grad must have the dtype of student_logits");
  require(t.rows == s.rows && t.cols == s.cols, "teacher_logits must have the shape of student_logits");
  require(grad.rows == s.rows && grad.cols == s.cols && grad.cs == 1, "grad must be [rows, cols] with unit column stride");
  require(s.cols >= 1 || s.rows == 0, "student_logits must have at least one class");
  require(temperature > 0.f && std::isfinite(temperature), "temperature must be finite and > 0");
}
}  // namespace kf

namespace kf::cpu {
// The code path the kernel takes now: "avx512", "avx2" or "portable" (common/cpu_isa.h).
const char* distill_cpu_path();

// Fused knowledge-distillation loss and its gradient, one row at a time. With a = s/T, b = t/T:
//   loss[i] = kl_weight * KL(softmax(b_i) || softmax(a_i)) + w_i * CE(s_i, y_i)
//   grad[i] = d loss[i] / d s_i = kl_weight * (softmax(a_i) - softmax(b_i)) / T + w_i * (softmax(s_i) - onehot(y_i))
// where w_i = ce_weight[0], or 0 when y_i == ignore_index (the CE term is then skipped entirely).
// s, t [rows, cols] float32/float16/bfloat16 (same dtype, any strides); labels [rows] int64;
// ce_weight [1] float32 (a pointer so a device-computed mean divisor needs no host sync);
// loss [rows] float32; grad [rows, cols] dtype of s, unit column stride.
// Online softmax over chunks of classes (fp32 accumulation, vector exps), then a second sweep writes grad.
// A label outside [0, cols) that is not ignore_index throws std::invalid_argument.
void distill_loss(const Mat& s, const Mat& t, const int64_t* labels /* [rows] */, const float* ce_weight /* [1] */,
                  float temperature, float kl_weight, int64_t ignore_index,
                  float* loss /* [rows] */, const Mat& grad);
}  // namespace kf::cpu
