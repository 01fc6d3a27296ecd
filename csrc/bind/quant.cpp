// Bindings for the int8 quantization family (quantize / dequantize rows, static-scale quantize).
#include <pybind11/pybind11.h>

#include <string>

#include "common/py.h"
#include "common/registry.h"
#include "cpu/quant.h"
#ifdef KERNELFLOW_WITH_CUDA
#include "cuda/quant.h"
#endif

namespace {
namespace py = pybind11;

void bind(py::module_& m) {
  m.def("quant_cpu_path", []() { return std::string(kf::cpu::quant_path()); },
        "the code path of the CPU quantization kernels: 'avx512', 'avx2' or 'portable'");
  m.def("quantize_rows_cpu", [](const py::tuple& x, const py::tuple& q, uintptr_t scale) {
    const kf::Mat xm = kf::to_mat(x, "x"), qm = kf::to_mat(q, "q");
    py::gil_scoped_release nogil;
    kf::cpu::quantize_rows(xm, qm, kf::to_ptr<float>(scale));
  }, py::arg("x"), py::arg("q"), py::arg("scale"), "x [M, K] f32/f16/bf16 -> q [M, K] int8, scale [M] f32");
  m.def("quantize_static_cpu", [](const py::tuple& x, uintptr_t scale, const py::tuple& q) {
    const kf::Mat xm = kf::to_mat(x, "x"), qm = kf::to_mat(q, "q");
    py::gil_scoped_release nogil;
    kf::cpu::quantize_static(xm, kf::to_ptr<const float>(scale), qm);
  }, py::arg("x"), py::arg("scale"), py::arg("q"));
  m.def("dequantize_rows_cpu", [](const py::tuple& q, uintptr_t scale, const py::tuple& out) {
    const kf::Mat qm = kf::to_mat(q, "q"), om = kf::to_mat(out, "out");
    py::gil_scoped_release nogil;
    kf::cpu::dequantize_rows(qm, kf::to_ptr<const float>(scale), om);
  }, py::arg("q"), py::arg("scale"), py::arg("out"));
#ifdef KERNELFLOW_WITH_CUDA
  m.def("quantize_rows_cuda", [](const py::tuple& x, const py::tuple& q, uintptr_t scale, uintptr_t stream) {
    const kf::Mat xm = kf::to_mat(x, "x"), qm = kf::to_mat(q, "q");
    py::gil_scoped_release nogil;
    kf::cuda::quantize_rows(xm, qm, kf::to_ptr<float>(scale), stream);
  }, py::arg("x"), py::arg("q"), py::arg("scale"), py::arg("stream"));
  m.def("quantize_static_cuda", [](const py::tuple& x, uintptr_t scale, const py::tuple& q, uintptr_t stream) {
    const kf::Mat xm = kf::to_mat(x, "x"), qm = kf::to_mat(q, "q");
    py::gil_scoped_release nogil;
    kf::cuda::quantize_static(xm, kf::to_ptr<const float>(scale), qm, stream);
  }, py::arg("x"), py::arg("scale"), py::arg("q"), py::arg("stream"));
  m.def("dequantize_rows_cuda", [](const py::tuple& q, uintptr_t scale, const py::tuple& out, uintptr_t stream) {
    const kf::Mat qm = kf::to_mat(q, "q"), om = kf::to_mat(out, "out");
    py::gil_scoped_release nogil;
    kf::cuda::dequantize_rows(qm, kf::to_ptr<const float>(scale), om, stream);
  }, py::arg("q"), py::arg("scale"), py::arg("out"), py::arg("stream"));
#endif
}

}  // namespace

KF_REGISTER_FAMILY(quant, bind);
