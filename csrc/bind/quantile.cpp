// Bindings for the column-quantile family.
#include <pybind11/pybind11.h>

#include <string>

#include "common/py.h"
#include "common/registry.h"
#include "cpu/quantile.h"
#ifdef KERNELFLOW_WITH_CUDA
#include "cuda/quantile.h"
#endif

namespace {
namespace py = pybind11;

void bind(py::module_& m) {
  m.def("column_quantiles_cpu", [](const py::tuple& x, uintptr_t q, int64_t nq, uintptr_t out) {
    const kf::Mat xm = kf::to_mat(x, "x");
    py::gil_scoped_release nogil;
    kf::cpu::column_quantiles(xm, kf::to_ptr<const double>(q), nq, kf::to_ptr<double>(out));
  }, py::arg("x"), py::arg("q"), py::arg("nq"), py::arg("out"),
     "x [rows, cols] f32/f64, q [nq] f64 -> out [nq, cols] f64 (numpy.nanquantile, linear)");
  m.def("quantile_cpu_path", []() { return std::string(kf::cpu::column_quantiles_cpu_path()); },
        "the CPU code path column_quantiles takes now: 'avx512', 'avx2' or 'portable'");
#ifdef KERNELFLOW_WITH_CUDA
  m.def("column_quantiles_cuda_workspace", &kf::cuda::column_quantiles_workspace_bytes,
        py::arg("rows"), py::arg("cols"), py::arg("nq"));
  m.def("column_quantiles_cuda", [](const py::tuple& x, uintptr_t q, int64_t nq, uintptr_t out, uintptr_t ws,
                                    int64_t ws_bytes, uintptr_t stream) {
    const kf::Mat xm = kf::to_mat(x, "x");
    py::gil_scoped_release nogil;
    kf::cuda::column_quantiles(xm, kf::to_ptr<const double>(q), nq, kf::to_ptr<double>(out), kf::to_ptr<void>(ws),
                               ws_bytes, stream);
  }, py::arg("x"), py::arg("q"), py::arg("nq"), py::arg("out"), py::arg("workspace"), py::arg("workspace_bytes"),
     py::arg("stream"));
#endif
}

}  // namespace

KF_REGISTER_FAMILY(quantile, bind);
