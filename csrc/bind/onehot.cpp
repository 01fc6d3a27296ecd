// Bindings for the one-hot / ordinal encoding family.
#include <pybind11/pybind11.h>

#include <string>

#include "common/py.h"
#include "common/registry.h"
#include "cpu/onehot.h"
#ifdef KERNELFLOW_WITH_CUDA
#include "cuda/onehot.h"
#endif

namespace {
namespace py = pybind11;

void bind(py::module_& m) {
  m.def("one_hot_cpu", [](const py::tuple& codes, uintptr_t feat, uintptr_t table, int64_t table_size,
                          uintptr_t slots, int64_t n_slots, const py::tuple& out, uintptr_t errors) {
    const kf::Mat cm = kf::to_mat(codes, "codes"), om = kf::to_mat(out, "out");
    py::gil_scoped_release nogil;
    kf::cpu::one_hot(cm, kf::to_ptr<const int64_t>(feat), kf::to_ptr<const int32_t>(table), table_size,
                     kf::to_ptr<const int32_t>(slots), n_slots, om, kf::to_ptr<int32_t>(errors));
  }, py::arg("codes"), py::arg("feat"), py::arg("table"), py::arg("table_size"), py::arg("slots"),
     py::arg("n_slots"), py::arg("out"), py::arg("errors"));
  m.def("ordinal_encode_cpu", [](const py::tuple& codes, uintptr_t feat, uintptr_t table, int64_t table_size,
                                 const py::tuple& out, uintptr_t errors) {
    const kf::Mat cm = kf::to_mat(codes, "codes"), om = kf::to_mat(out, "out");
    py::gil_scoped_release nogil;
    kf::cpu::ordinal_encode(cm, kf::to_ptr<const int64_t>(feat), kf::to_ptr<const double>(table), table_size,
                            om, kf::to_ptr<int32_t>(errors));
  }, py::arg("codes"), py::arg("feat"), py::arg("table"), py::arg("table_size"), py::arg("out"), py::arg("errors"));
  m.def("onehot_cpu_path", []() { return std::string(kf::cpu::onehot_cpu_path()); },
        "the code path one_hot_cpu / ordinal_encode_cpu take now: 'avx512', 'avx2' or 'portable'");
#ifdef KERNELFLOW_WITH_CUDA
  m.def("one_hot_cuda", [](const py::tuple& codes, uintptr_t feat, uintptr_t table, int64_t table_size,
                           uintptr_t slots, int64_t n_slots, const py::tuple& out, uintptr_t errors, uintptr_t stream) {
    const kf::Mat cm = kf::to_mat(codes, "codes"), om = kf::to_mat(out, "out");
    py::gil_scoped_release nogil;
    kf::cuda::one_hot(cm, kf::to_ptr<const int64_t>(feat), kf::to_ptr<const int32_t>(table), table_size,
                      kf::to_ptr<const int32_t>(slots), n_slots, om, kf::to_ptr<int32_t>(errors), stream);
  }, py::arg("codes"), py::arg("feat"), py::arg("table"), py::arg("table_size"), py::arg("slots"),
     py::arg("n_slots"), py::arg("out"), py::arg("errors"), py::arg("stream"));
  m.def("ordinal_encode_cuda", [](const py::tuple& codes, uintptr_t feat, uintptr_t table, int64_t table_size,
                                  const py::tuple& out, uintptr_t errors, uintptr_t stream) {
    const kf::Mat cm = kf::to_mat(codes, "codes"), om = kf::to_mat(out, "out");
    py::gil_scoped_release nogil;
    kf::cuda::ordinal_encode(cm, kf::to_ptr<const int64_t>(feat), kf::to_ptr<const double>(table), table_size,
                             om, kf::to_ptr<int32_t>(errors), stream);
  }, py::arg("codes"), py::arg("feat"), py::arg("table"), py::arg("table_size"), py::arg("out"), py::arg("errors"),
     py::arg("stream"));
#endif
}

}  // namespace

KF_REGISTER_FAMILY(onehot, bind);
