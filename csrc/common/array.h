// The plain array view passed from Python to every kernel: a raw pointer, sizes, element
// strides and a dtype code. No libtorch: any producer of a data pointer can call a kernel.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace kf {

// Must match kernelflow/_C_dtypes in python/kernelflow/_array.py.
enum class DType : int { f32 = 0, f64 = 1, f16 = 2, bf16 = 3, i8 = 4, u8 = 5, i32 = 6, i64 = 7 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::i8: return "int8";
    case DType::u8: return "uint8";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
  }
  return "unknown";
}

inline DType to_dtype(int code, const char* arg) {
  if (code < 0 || code > 7) throw std::invalid_argument(std::string(arg) + ": unknown dtype code " + std::to_string(code));
  return static_cast<DType>(code);
}

// A 2-D strided matrix [rows, cols]; strides in elements (int64: tensors past 2^31 elements).
struct Mat {
  void* data;
  int64_t rows, cols;
  int64_t rs, cs;  // row stride, column stride (elements)
  DType dtype;
};

// A 1-D contiguous vector.
struct Vec {
  void* data;
  int64_t n;
  DType dtype;
};

inline void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

inline void require_dtype(DType got, std::initializer_list<DType> allowed, const char* arg) {
  for (DType d : allowed) if (d == got) return;
  std::string names;
  for (DType d : allowed) { if (!names.empty()) names += ", "; names += dtype_name(d); }
  throw std::invalid_argument(std::string(arg) + " must have dtype in {" + names + "}, got " + dtype_name(got));
}

inline void require_nonnull(const void* p, int64_t n, const char* arg) {
  if (n > 0 && p == nullptr) throw std::invalid_argument(std::string(arg) + " has a null data pointer");
}

// m must match x's dtype and shape and be contiguous (row-major, unit column stride).
inline void require_contiguous_like(const Mat& m, const Mat& x, const char* arg) {
  require(m.dtype == x.dtype, std::string(arg) + " must have the dtype of x");
  require(m.rows == x.rows && m.cols == x.cols, std::string(arg) + " must have the shape of x");
  require((m.cs == 1 && m.rs == m.cols) || m.rows * m.cols == 0, std::string(arg) + " must be contiguous");
  require_nonnull(m.data, m.rows * m.cols, arg);
}

}  // namespace kf
