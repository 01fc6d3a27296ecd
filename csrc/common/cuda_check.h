// Every CUDA runtime call is checked; a failure raises a Python RuntimeError naming the call.
#pragma once
#ifdef KERNELFLOW_WITH_CUDA
#include <cuda_runtime.h>
#include <stdexcept>
#include <string>

namespace kf {
inline void cuda_check(cudaError_t err, const char* what, const char* where) {
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls are not blamed
    throw std::runtime_error(std::string("CUDA error in ") + where + ": " + what + " failed: " +
                             cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
  }
}
}  // namespace kf

#define KF_CUDA_CHECK(call) ::kf::cuda_check((call), #call, __func__)
// After a launch: catches bad configurations now and asynchronous faults at the next sync.
#define KF_CUDA_CHECK_LAUNCH(name) ::kf::cuda_check(cudaGetLastError(), name " launch", __func__)
#endif
