// Bindings for the fused distillation-loss family.
#include <pybind11/pybind11.h>

#include <string>

#include "common/py.h"
#include "common/registry.h"
#include "cpu/distill.h"
#ifdef KERNELFLOW_WITH_CUDA
#include "cuda/distill.h"
#endif

namespace {
namespace py = pybind11;

void bind(py::module_& m) {
  m.def("distill_cpu_path", []() { return std::string(kf::cpu::distill_cpu_path()); },
        "the CPU code path of the distillation-loss kernel now: 'avx512', 'avx2' or 'portable'");
  m.def("distill_loss_cpu", [](const py::tuple& s, const py::tuple& t, uintptr_t labels, uintptr_t ce_weight,
                               float temperature, float kl_weight, int64_t ignore_index, uintptr_t loss,
                               const py::tuple& grad) {
    const kf::Mat sm = kf::to_mat(s, "student_logits"), tm = kf::to_mat(t, "teacher_logits"), gm = kf::to_mat(grad, "grad");
    py::gil_scoped_release nogil;
    kf::cpu::distill_loss(sm, tm, kf::to_ptr<const int64_t>(labels), kf::to_ptr<const float>(ce_weight), temperature,
                          kl_weight, ignore_index, kf::to_ptr<float>(loss), gm);
  }, py::arg("s"), py::arg("t"), py::arg("labels"), py::arg("ce_weight"), py::arg("temperature"),
     py::arg("kl_weight"), py::arg("ignore_index"), py::arg("loss"), py::arg("grad"),
     "s, t [rows, C] f32/f16/bf16; labels [rows] i64; ce_weight [1] f32 -> loss [rows] f32, grad [rows, C]");
#ifdef KERNELFLOW_WITH_CUDA
  m.def("distill_loss_cuda", [](const py::tuple& s, const py::tuple& t, uintptr_t labels, uintptr_t ce_weight,
                                float temperature, float kl_weight, int64_t ignore_index, uintptr_t loss,
                                const py::tuple& grad, uintptr_t stream) {
    const kf::Mat sm = kf::to_mat(s, "student_logits"), tm = kf::to_mat(t, "teacher_logits"), gm = kf::to_mat(grad, "grad");
    py::gil_scoped_release nogil;
    kf::cuda::distill_loss(sm, tm, kf::to_ptr<const int64_t>(labels), kf::to_ptr<const float>(ce_weight), temperature,
                           kl_weight, ignore_index, kf::to_ptr<float>(loss), gm, stream);
  }, py::arg("s"), py::arg("t"), py::arg("labels"), py::arg("ce_weight"), py::arg("temperature"),
     py::arg("kl_weight"), py::arg("ignore_index"), py::arg("loss"), py::arg("grad"), py::arg("stream"));
#endif
}

}  // namespace

KF_REGISTER_FAMILY(distill, bind);
