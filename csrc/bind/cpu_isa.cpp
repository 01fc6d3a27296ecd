// The CPU code-path level shared by the families (common/cpu_isa.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/cpu_isa.h"
#include "common/registry.h"

namespace {
namespace py = pybind11;

void bind(py::module_& m) {
  m.def("cpu_isa", []() { return std::string(kf::cpu::isa_name(kf::cpu::isa())); },
        "the CPU code-path level kernels use now: 'avx512', 'avx2' or 'portable'");
  m.def("cpu_isa_detected", []() { return std::string(kf::cpu::isa_name(kf::cpu::detected_isa())); },
        "the best level this CPU supports");
  m.def("set_cpu_isa", [](const std::string& name) { kf::cpu::set_isa(name); }, py::arg("isa"),
        "force 'avx512', 'avx2' or 'portable' (ValueError if the CPU lacks it), or 'auto'");
}

}  // namespace

KF_REGISTER_FAMILY(cpu_isa, bind);
