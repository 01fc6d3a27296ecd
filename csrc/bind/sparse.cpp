// Bindings for the sparse family. A sparse matrix arrives as the tuple
// (indptr_ptr, indices_ptr, data_ptr, index_dtype, data_dtype, rows, cols, nnz, csr), built by
// kernelflow.ops.sparse.
#include <pybind11/pybind11.h>

#include <string>

#include "common/py.h"
#include "common/registry.h"
#include "cpu/sparse.h"

namespace {
namespace py = pybind11;

kf::Compressed to_compressed(const py::tuple& t) {
  if (t.size() != 9) throw std::invalid_argument("x: expected (indptr, indices, data, index_dtype, data_dtype, rows, cols, nnz, csr)");
  kf::Compressed c;
  c.indptr = reinterpret_cast<const void*>(t[0].cast<uintptr_t>());
  c.indices = reinterpret_cast<const void*>(t[1].cast<uintptr_t>());
  c.data = reinterpret_cast<const void*>(t[2].cast<uintptr_t>());
  c.index_dtype = kf::to_dtype(t[3].cast<int>(), "indices");
  c.data_dtype = kf::to_dtype(t[4].cast<int>(), "data");
  c.rows = t[5].cast<int64_t>();
  c.cols = t[6].cast<int64_t>();
  c.nnz = t[7].cast<int64_t>();
  c.csr = t[8].cast<bool>();
  return c;
}

void bind(py::module_& m) {
  m.def("sparse_column_stats_cpu", [](const py::tuple& x, uintptr_t w, uintptr_t out) {
    const kf::Compressed c = to_compressed(x);
    py::gil_scoped_release nogil;
    kf::cpu::sparse_column_stats(c, kf::to_ptr<const double>(w), kf::to_ptr<double>(out));
  }, py::arg("x"), py::arg("w"), py::arg("out"),
        "CSR/CSC x, w [rows] f64 or 0 -> out [6, cols] f64 (weight, nan weight, mean, m2, min, max), implicit zeros included");
  m.def("sparse_column_apply_cpu", [](const py::tuple& x, uintptr_t params, uintptr_t out) {
    const kf::Compressed c = to_compressed(x);
    py::gil_scoped_release nogil;
    kf::cpu::sparse_column_apply(c, kf::to_ptr<const double>(params), kf::to_ptr<void>(out));
  }, py::arg("x"), py::arg("params"), py::arg("out"), "params [4, cols] f64 (fill, lo, hi, scale) -> out [nnz] (may alias data)");
  m.def("sparse_cpu_path", []() { return std::string(kf::cpu::sparse_cpu_path()); },
        "the CPU code path of the sparse kernels: 'portable' (scalar scatter / gather) at every level");
  m.def("sparse_column_quantiles_cpu", [](const py::tuple& x, uintptr_t q, int64_t nq, uintptr_t out) {
    const kf::Compressed c = to_compressed(x);
    py::gil_scoped_release nogil;
    kf::cpu::sparse_column_quantiles(c, kf::to_ptr<const double>(q), nq, kf::to_ptr<double>(out));
  }, py::arg("x"), py::arg("q"), py::arg("nq"), py::arg("out"), "CSC x, q [nq] f64 -> out [nq, cols] f64, implicit zeros included");
}

}  // namespace

KF_REGISTER_FAMILY(sparse, bind);
