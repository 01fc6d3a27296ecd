// Bindings for the fused whole-table transform. The spec arrives as a tuple of data pointers
// (see python/kernelflow/ops/table.py, TableSpec.pointers()).
#include <pybind11/pybind11.h>

#include <string>

#include "common/py.h"
#include "common/registry.h"
#include "cpu/table.h"
#ifdef KERNELFLOW_WITH_CUDA
#include "cuda/table.h"
#endif

namespace {
namespace py = pybind11;

kf::TableSpec to_spec(const py::tuple& t) {
  if (t.size() != 19) throw std::invalid_argument("spec: expected 19 entries");
  kf::TableSpec s;
  s.Fn = t[0].cast<int64_t>(); s.Fi = t[1].cast<int64_t>(); s.Fc = t[2].cast<int64_t>(); s.W = t[3].cast<int64_t>();
  s.params = kf::to_ptr<const double>(t[4].cast<uintptr_t>());
  s.num_out = kf::to_ptr<const int64_t>(t[5].cast<uintptr_t>());
  s.ind_src = kf::to_ptr<const int64_t>(t[6].cast<uintptr_t>());
  s.ind_out = kf::to_ptr<const int64_t>(t[7].cast<uintptr_t>());
  s.cat_off = kf::to_ptr<const int64_t>(t[8].cast<uintptr_t>());
  s.cat_width = kf::to_ptr<const int64_t>(t[9].cast<uintptr_t>());
  s.cat_mode = kf::to_ptr<const int64_t>(t[10].cast<uintptr_t>());
  s.cat_toff = kf::to_ptr<const int64_t>(t[11].cast<uintptr_t>());
  s.cat_tab = kf::to_ptr<const int64_t>(t[12].cast<uintptr_t>());
  s.cat_k = kf::to_ptr<const int64_t>(t[13].cast<uintptr_t>());
  s.cat_unk = kf::to_ptr<const int64_t>(t[14].cast<uintptr_t>());
  s.cat_unk_value = kf::to_ptr<const double>(t[15].cast<uintptr_t>());
  s.col_kind = kf::to_ptr<const int32_t>(t[16].cast<uintptr_t>());
  s.col_src = kf::to_ptr<const int32_t>(t[17].cast<uintptr_t>());
  s.col_slot = kf::to_ptr<const int32_t>(t[18].cast<uintptr_t>());
  return s;
}

void bind(py::module_& m) {
  m.def("table_transform_cpu", [](const py::tuple& x, const py::tuple& codes, const py::tuple& spec, const py::tuple& out) {
    const kf::Mat xm = kf::to_mat(x, "xnum"), cm = kf::to_mat(codes, "codes"), om = kf::to_mat(out, "out");
    const kf::TableSpec s = to_spec(spec);
    py::gil_scoped_release nogil;
    kf::cpu::table_transform(xm, cm, s, om);
  }, py::arg("xnum"), py::arg("codes"), py::arg("spec"), py::arg("out"));
  m.def("table_cpu_path", []() { return std::string(kf::cpu::table_cpu_path()); },
        "the code path table_transform_cpu takes now: 'avx512', 'avx2' or 'portable'");
#ifdef KERNELFLOW_WITH_CUDA
  m.def("table_transform_cuda", [](const py::tuple& x, const py::tuple& codes, const py::tuple& spec, const py::tuple& out,
                                   uintptr_t stream) {
    const kf::Mat xm = kf::to_mat(x, "xnum"), cm = kf::to_mat(codes, "codes"), om = kf::to_mat(out, "out");
    const kf::TableSpec s = to_spec(spec);
    py::gil_scoped_release nogil;
    kf::cuda::table_transform(xm, cm, s, om, stream);
  }, py::arg("xnum"), py::arg("codes"), py::arg("spec"), py::arg("out"), py::arg("stream"));
#endif
}

}  // namespace

KF_REGISTER_FAMILY(table, bind);
