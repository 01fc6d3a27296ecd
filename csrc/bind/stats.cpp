// Bindings for the column-statistics family.
#include <pybind11/pybind11.h>

#include <string>

#include "common/py.h"
#include "common/registry.h"
#include "cpu/stats.h"
#ifdef KERNELFLOW_WITH_CUDA
#include "cuda/stats.h"
#endif

namespace {
namespace py = pybind11;

void bind(py::module_& m) {
  m.def("column_stats_cpu", [](const py::tuple& x, uintptr_t out) {
    const kf::Mat xm = kf::to_mat(x, "x");
    py::gil_scoped_release nogil;
    kf::cpu::column_stats(xm, kf::to_ptr<double>(out));
  }, py::arg("x"), py::arg("out"), "x [rows, cols] f32/f64 -> out [6, cols] f64 (count, nan, mean, m2, min, max)");
  m.def("stats_cpu_path", []() { return std::string(kf::cpu::column_stats_cpu_path()); },
        "the CPU code path column_stats takes now: 'avx512', 'avx2' or 'portable'");
#ifdef KERNELFLOW_WITH_CUDA
  m.def("column_stats_cuda_workspace", &kf::cuda::column_stats_workspace_bytes, py::arg("rows"), py::arg("cols"));
  m.def("column_stats_cuda", [](const py::tuple& x, uintptr_t out, uintptr_t ws, int64_t ws_bytes, uintptr_t stream) {
    const kf::Mat xm = kf::to_mat(x, "x");
    py::gil_scoped_release nogil;
    kf::cuda::column_stats(xm, kf::to_ptr<double>(out), kf::to_ptr<void>(ws), ws_bytes, stream);
  }, py::arg("x"), py::arg("out"), py::arg("workspace"), py::arg("workspace_bytes"), py::arg("stream"));
#endif
}

}  // namespace

KF_REGISTER_FAMILY(stats, bind);
