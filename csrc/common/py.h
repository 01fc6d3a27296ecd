// Conversions from the Python-side array descriptors to kernel views.
// A matrix arrives as the tuple (data_ptr, rows, cols, row_stride, col_stride, dtype_code),
// built by kernelflow._array.mat(); strides are in elements.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "common/array.h"

namespace kf {
namespace py = pybind11;

inline Mat to_mat(const py::tuple& t, const char* arg) {
  if (t.size() != 6) throw std::invalid_argument(std::string(arg) + ": expected (ptr, rows, cols, rs, cs, dtype)");
  Mat m;
  m.data = reinterpret_cast<void*>(t[0].cast<uintptr_t>());
  m.rows = t[1].cast<int64_t>();
  m.cols = t[2].cast<int64_t>();
  m.rs = t[3].cast<int64_t>();
  m.cs = t[4].cast<int64_t>();
  m.dtype = to_dtype(t[5].cast<int>(), arg);
  require(m.rows >= 0 && m.cols >= 0, std::string(arg) + " must have a non-negative shape");
  return m;
}

template <typename T>
inline T* to_ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

}  // namespace kf
