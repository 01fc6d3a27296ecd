// kernelflow._C: the pybind11 module. Each op family binds itself from csrc/bind/<family>.cpp
// (KF_REGISTER_FAMILY); this file adds build and device information.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/registry.h"
#ifdef KERNELFLOW_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict d;
#ifdef KERNELFLOW_WITH_CUDA
  d["cuda"] = true;
  d["cuda_architectures"] = std::string(KERNELFLOW_CUDA_ARCHS);
  d["cuda_runtime_version"] = CUDART_VERSION;
#else
  d["cuda"] = false;
  d["cuda_architectures"] = std::string();
  d["cuda_runtime_version"] = 0;
#endif
#ifdef _OPENMP
  d["openmp"] = true;
#else
  d["openmp"] = false;
#endif
  py::list fam;
  for (const auto& kv : kf::binders()) fam.append(kv.first);
  d["families"] = fam;
  return d;
}

// Number of usable CUDA devices, with the reason when there are none (no driver, no device).
py::tuple cuda_device_status() {
#ifdef KERNELFLOW_WITH_CUDA
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return py::make_tuple(0, std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err));
  }
  return py::make_tuple(n, std::string());
#else
  return py::make_tuple(0, std::string("built without CUDA"));
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "kernelflow compiled kernels (C++ CPU and CUDA); see kernelflow.ops for the Python API";
  m.def("build_info", &build_info);
  m.def("cuda_device_status", &cuda_device_status);
  for (auto& kv : kf::binders()) kv.second(m);
}
