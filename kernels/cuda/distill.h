#pragma once
#include <cstdint>
#include "common/array.h"

namespace kf::cuda {
// Device version of kf::cpu::distill_loss (same formula, same arguments, all pointers on the
// device). s, t [rows, cols] float32/float16/bfloat16 (any strides); labels [rows] int64;
// ce_weight [1] float32; loss [rows] float32; grad [rows, cols] dtype of s, unit column stride.
// A label outside [0, cols) that is not ignore_index cannot raise from the device: that row's
// loss and gradient are NaN.
void distill_loss(const Mat& s, const Mat& t, const int64_t* labels, const float* ce_weight, float temperature,
                  float kl_weight, int64_t ignore_index, float* loss, const Mat& grad, uintptr_t stream);
}  // namespace kf::cuda
