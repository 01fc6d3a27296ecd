// Bindings for the LayerNorm / RMSNorm family. Vectors cross as data pointers (0 = absent).
#include <pybind11/pybind11.h>

#include <string>

#include "common/py.h"
#include "common/registry.h"
#include "cpu/norm.h"
#ifdef KERNELFLOW_WITH_CUDA
#include "cuda/norm.h"
#endif

namespace {
namespace py = pybind11;
using kf::to_ptr;

void bind(py::module_& m) {
  m.def("norm_cpu_path", []() { return std::string(kf::cpu::norm_cpu_path()); },
        "the CPU code path of the LayerNorm / RMSNorm kernels now: 'avx512', 'avx2' or 'portable'");
  m.def("norm_fwd_cpu", [](const py::tuple& x, uintptr_t weight, uintptr_t bias, double eps, bool rms,
                           const py::tuple& y, uintptr_t mean, uintptr_t rstd) {
    const kf::Mat xm = kf::to_mat(x, "x"), ym = kf::to_mat(y, "y");
    py::gil_scoped_release nogil;
    kf::cpu::norm_fwd(xm, to_ptr<const float>(weight), to_ptr<const float>(bias), eps, rms, ym, to_ptr<float>(mean),
                      to_ptr<float>(rstd));
  }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps"), py::arg("rms"), py::arg("y"), py::arg("mean"),
     py::arg("rstd"));
  m.def("norm_bwd_cpu", [](const py::tuple& dy, const py::tuple& x, uintptr_t weight, uintptr_t mean, uintptr_t rstd,
                           bool rms, const py::tuple& dx, uintptr_t dw_partial, uintptr_t db_partial, int64_t blocks) {
    const kf::Mat dym = kf::to_mat(dy, "dy"), xm = kf::to_mat(x, "x"), dxm = kf::to_mat(dx, "dx");
    py::gil_scoped_release nogil;
    kf::cpu::norm_bwd(dym, xm, to_ptr<const float>(weight), to_ptr<const float>(mean), to_ptr<const float>(rstd), rms,
                      dxm, to_ptr<float>(dw_partial), to_ptr<float>(db_partial), blocks);
  }, py::arg("dy"), py::arg("x"), py::arg("weight"), py::arg("mean"), py::arg("rstd"), py::arg("rms"), py::arg("dx"),
     py::arg("dweight_partial"), py::arg("dbias_partial"), py::arg("blocks"));
#ifdef KERNELFLOW_WITH_CUDA
  m.def("norm_fwd_cuda", [](const py::tuple& x, uintptr_t weight, uintptr_t bias, double eps, bool rms,
                            const py::tuple& y, uintptr_t mean, uintptr_t rstd, uintptr_t stream) {
    const kf::Mat xm = kf::to_mat(x, "x"), ym = kf::to_mat(y, "y");
    py::gil_scoped_release nogil;
    kf::cuda::norm_fwd(xm, to_ptr<const float>(weight), to_ptr<const float>(bias), eps, rms, ym, to_ptr<float>(mean),
                       to_ptr<float>(rstd), stream);
  }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps"), py::arg("rms"), py::arg("y"), py::arg("mean"),
     py::arg("rstd"), py::arg("stream"));
  m.def("norm_bwd_cuda", [](const py::tuple& dy, const py::tuple& x, uintptr_t weight, uintptr_t mean, uintptr_t rstd,
                            bool rms, const py::tuple& dx, uintptr_t dw_partial, uintptr_t db_partial, int64_t blocks,
                            uintptr_t stream) {
    const kf::Mat dym = kf::to_mat(dy, "dy"), xm = kf::to_mat(x, "x"), dxm = kf::to_mat(dx, "dx");
    py::gil_scoped_release nogil;
    kf::cuda::norm_bwd(dym, xm, to_ptr<const float>(weight), to_ptr<const float>(mean), to_ptr<const float>(rstd), rms,
                       dxm, to_ptr<float>(dw_partial), to_ptr<float>(db_partial), blocks, stream);
  }, py::arg("dy"), py::arg("x"), py::arg("weight"), py::arg("mean"), py::arg("rstd"), py::arg("rms"), py::arg("dx"),
     py::arg("dweight_partial"), py::arg("dbias_partial"), py::arg("blocks"), py::arg("stream"));
#endif
}

}  // namespace

KF_REGISTER_FAMILY(norm, bind);
