// Bindings for the fused numeric transform family.
#include <pybind11/pybind11.h>

#include <string>

#include "common/py.h"
#include "common/registry.h"
#include "common/stream_store.h"
#include "cpu/transform.h"
#ifdef KERNELFLOW_WITH_CUDA
#include "cuda/transform.h"
#endif

namespace {
namespace py = pybind11;

void bind(py::module_& m) {
  m.def("numeric_transform_cpu", [](const py::tuple& x, uintptr_t params, const py::tuple& out, bool fresh) {
    const kf::Mat xm = kf::to_mat(x, "x"), om = kf::to_mat(out, "out");
    py::gil_scoped_release nogil;
    kf::cpu::numeric_transform(xm, kf::to_ptr<const double>(params), om, fresh);
  }, py::arg("x"), py::arg("params"), py::arg("out"), py::arg("fresh") = false,
     "fresh: out was just allocated and not yet written (huge pages, one 2 MB page per unit of work)");
  m.def("transform_cpu_path", []() { return std::string(kf::cpu::transform_cpu_path()); },
        "the code path numeric_transform_cpu takes now: 'avx512', 'avx2' or 'portable'");
  // shared by the transform, table and one-hot CPU kernels (common/stream_store.h)
  m.def("xform_nt_threshold", []() { return kf::cpu::nt_threshold(); },
        "outputs of at least this many bytes are written with non-temporal stores");
  m.def("set_xform_nt_threshold", [](int64_t bytes) { kf::cpu::nt_threshold_setting().store(bytes < 0 ? -1 : bytes); },
        py::arg("bytes"), "set the streaming-store threshold in bytes (0: always stream; -1: the last-level cache size)");
  m.def("advise_fresh_output", [](uintptr_t ptr, int64_t bytes) { kf::cpu::advise_fresh(reinterpret_cast<void*>(ptr), bytes); },
        py::arg("ptr"), py::arg("bytes"),
        "ask for transparent huge pages on a just-allocated CPU output of `bytes` bytes before its first write "
        "(advice only; below 4 MB nothing is done)");
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
