// Bindings for the fused numeric transform family.
#include <pybind11/pybind11.h>

#include "common/py.h"
#include "common/registry.h"
#include "cpu/transform.h"
#ifdef KERNELFLOW_WITH_CUDA
#include "cuda/transform.h"
#endif

namespace {
namespace py = pybind11;

void bind(py::module_& m) {
  m.def("numeric_transform_cpu", [](const py::tuple& x, uintptr_t params, const py::tuple& out) {
    const kf::Mat xm = kf::to_mat(x, "x"), om = kf::to_mat(out, "out");
    py::gil_scoped_release nogil;
    kf::cpu::numeric_transform(xm, kf::to_ptr<const double>(params), om);
  }, py::arg("x"), py::arg("params"), py::arg("out"));
#ifdef KERNELFLOW_WITH_CUDA
  m.def("numeric_transform_cuda", [](const py::tuple& x, uintptr_t params, const py::tuple& out, uintptr_t stream) {
    const kf::Mat xm = kf::to_mat(x, "x"), om = kf::to_mat(out, "out");
    py::gil_scoped_release nogil;
    kf::cuda::numeric_transform(xm, kf::to_ptr<const double>(params), om, stream);
  }, py::arg("x"), py::arg("params"), py::arg("out"), py::arg("stream"));
#endif
}

}  // namespace

KF_REGISTER_FAMILY(transform, bind);
