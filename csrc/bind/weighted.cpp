// Bindings for the weighted-statistics family.
#include <pybind11/pybind11.h>

#include <string>

#include "common/py.h"
#include "common/registry.h"
#include "cpu/weighted.h"

namespace {
namespace py = pybind11;

void bind(py::module_& m) {
  m.def("weighted_column_stats_cpu", [](const py::tuple& x, uintptr_t w, uintptr_t out) {
    const kf::Mat xm = kf::to_mat(x, "x");
    py::gil_scoped_release nogil;
    kf::cpu::weighted_column_stats(xm, kf::to_ptr<const double>(w), kf::to_ptr<double>(out));
  }, py::arg("x"), py::arg("w"), py::arg("out"),
        "x [rows, cols] f32/f64, w [rows] f64 or 0 (all 1) -> out [6, cols] f64 (weight, nan weight, mean, m2, min, max)");
  m.def("weighted_cpu_path", []() { return std::string(kf::cpu::weighted_cpu_path()); },
        "the CPU code path weighted_column_stats takes now: 'avx512', 'avx2' or 'portable'");
}

}  // namespace

KF_REGISTER_FAMILY(weighted, bind);
