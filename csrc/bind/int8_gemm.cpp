// Bindings for the int8 GEMM family (W8A8 with fused epilogue, weight-only int8).
// Optional pointers (bias, w_packed) are passed as 0.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/aligned.h"
#include "common/py.h"
#include "common/registry.h"
#include "cpu/int8_gemm.h"
#include "cpu/int8_pack.h"
#include "cpu/quant.h"
#ifdef KERNELFLOW_WITH_CUDA
#include "cuda/int8_gemm.h"
#endif

namespace {
namespace py = pybind11;

void bind(py::module_& m) {
  m.attr("INT8_GEMM_MAX_K") = kf::kInt8GemmMaxK;
  m.def("int8_packed_bytes", &kf::cpu::int8_packed_bytes, py::arg("n"), py::arg("k"),
        "bytes of w_q [n, k] in the packed CPU layout");
  m.def("int8_pack_cpu", [](const py::tuple& wq, uintptr_t out, int64_t nbytes) {
    const kf::Mat wm = kf::to_mat(wq, "w_q");
    kf::require_dtype(wm.dtype, {kf::DType::i8}, "w_q");
    kf::require(wm.cs == 1 || wm.cols <= 1, "w_q must have unit column stride");
    kf::require(nbytes == kf::cpu::int8_packed_bytes(wm.rows, wm.cols), "out must hold int8_packed_bytes(N, K) bytes");
    kf::require_nonnull(reinterpret_cast<void*>(out), nbytes, "out");
    py::gil_scoped_release nogil;
    kf::cpu::int8_pack(wm, kf::to_ptr<uint8_t>(out));
  }, py::arg("w_q"), py::arg("out"), py::arg("nbytes"), "pack w_q [N, K] int8 once for the CPU GEMMs");
  m.def("int8_cpu_path", []() { return std::string(kf::cpu::int8_path_name(kf::cpu::int8_path())); },
        "the code path of the CPU int8 GEMMs: 'amx', 'avx512', 'avx2' or 'portable'");
  m.def("set_int8_cpu_path", [](const std::string& name) { kf::cpu::set_int8_path(name); }, py::arg("path"),
        "force 'portable', 'avx2', 'avx512' or 'amx' (ValueError if the CPU / OS lacks it), or 'auto'");
  m.def("int8_cpu_paths", []() {
    py::list l;
    for (auto p : kf::cpu::kInt8Paths)
      if (kf::cpu::int8_path_supported(p)) l.append(kf::cpu::int8_path_name(p));
    return l;
  }, "the CPU int8 GEMM paths this CPU supports");
  m.def("int8_gemm_cpu", [](const py::tuple& xq, const py::tuple& wq, uintptr_t packed, int64_t packed_bytes,
                            uintptr_t rs, uintptr_t cs, uintptr_t bias, int act, const py::tuple& y) {
    const kf::Mat xm = kf::to_mat(xq, "x_q"), wm = kf::to_mat(wq, "w_q"), ym = kf::to_mat(y, "out");
    py::gil_scoped_release nogil;
    kf::cpu::int8_gemm(xm, wm, kf::to_ptr<const uint8_t>(packed), packed_bytes, kf::to_ptr<const float>(rs),
                       kf::to_ptr<const float>(cs), kf::to_ptr<const float>(bias), act, ym);
  }, py::arg("x_q"), py::arg("w_q"), py::arg("w_packed"), py::arg("packed_bytes"), py::arg("row_scale"),
     py::arg("col_scale"), py::arg("bias"), py::arg("act"), py::arg("out"));
  // Int8Linear's w8a8 call in one crossing: x quantized per row (act_scale 0) or with the static
  // act_scale [1], into buffers of this call, then the GEMM with its fused epilogue. Saves the
  // Python round trip of a separate quantize op (its output tensors, descriptors and dispatch).
  m.def("int8_linear_cpu", [](const py::tuple& x, const py::tuple& wq, uintptr_t packed, int64_t packed_bytes,
                              uintptr_t ws, uintptr_t bias, uintptr_t act_scale, int act, const py::tuple& y) {
    const kf::Mat xm = kf::to_mat(x, "x"), wm = kf::to_mat(wq, "w_q"), ym = kf::to_mat(y, "out");
    py::gil_scoped_release nogil;
    kf::AlignedVector<int8_t> q(static_cast<size_t>(xm.rows * xm.cols));  // [M, K], all written by the quantizer
    std::vector<float> rs(static_cast<size_t>(xm.rows));             // [M]
    const kf::Mat qm{q.data(), xm.rows, xm.cols, xm.cols, 1, kf::DType::i8};
    if (act_scale) {
      kf::cpu::quantize_static(xm, kf::to_ptr<const float>(act_scale), qm);
      std::fill(rs.begin(), rs.end(), *kf::to_ptr<const float>(act_scale));
    } else {
      kf::cpu::quantize_rows(xm, qm, rs.data());
    }
    kf::cpu::int8_gemm(qm, wm, kf::to_ptr<const uint8_t>(packed), packed_bytes, rs.data(), kf::to_ptr<const float>(ws),
                       kf::to_ptr<const float>(bias), act, ym);
  }, py::arg("x"), py::arg("w_q"), py::arg("w_packed"), py::arg("packed_bytes"), py::arg("w_scale"), py::arg("bias"),
     py::arg("act_scale"), py::arg("act"), py::arg("out"),
     "quantize x [M, K] (per row, or act_scale [1] float32) and run the W8A8 GEMM into out [M, N]");
  m.def("int8_gemm_acc_cpu", [](const py::tuple& xq, const py::tuple& wq, uintptr_t acc) {
    const kf::Mat xm = kf::to_mat(xq, "x_q"), wm = kf::to_mat(wq, "w_q");
    py::gil_scoped_release nogil;
    kf::cpu::int8_gemm_acc(xm, wm, kf::to_ptr<int32_t>(acc));
  }, py::arg("x_q"), py::arg("w_q"), py::arg("acc"), "exact int32 x_q @ w_q^T into acc [M, N] (contiguous)");
  m.def("weight_only_gemm_cpu", [](const py::tuple& x, const py::tuple& wq, uintptr_t packed, int64_t packed_bytes,
                                   uintptr_t ws, uintptr_t bias, int act, const py::tuple& y) {
    const kf::Mat xm = kf::to_mat(x, "x"), wm = kf::to_mat(wq, "w_q"), ym = kf::to_mat(y, "out");
    py::gil_scoped_release nogil;
    kf::cpu::weight_only_gemm(xm, wm, kf::to_ptr<const uint8_t>(packed), packed_bytes, kf::to_ptr<const float>(ws),
                              kf::to_ptr<const float>(bias), act, ym);
  }, py::arg("x"), py::arg("w_q"), py::arg("w_packed"), py::arg("packed_bytes"), py::arg("w_scale"), py::arg("bias"),
     py::arg("act"), py::arg("out"));
#ifdef KERNELFLOW_WITH_CUDA
  m.def("int8_gemm_cuda", [](const py::tuple& xq, const py::tuple& wq, uintptr_t rs, uintptr_t cs, uintptr_t bias,
                             int act, const py::tuple& y, uintptr_t stream) {
    const kf::Mat xm = kf::to_mat(xq, "x_q"), wm = kf::to_mat(wq, "w_q"), ym = kf::to_mat(y, "out");
    py::gil_scoped_release nogil;
    kf::cuda::int8_gemm(xm, wm, kf::to_ptr<const float>(rs), kf::to_ptr<const float>(cs), kf::to_ptr<const float>(bias), act, ym, stream);
  }, py::arg("x_q"), py::arg("w_q"), py::arg("row_scale"), py::arg("col_scale"), py::arg("bias"), py::arg("act"), py::arg("out"), py::arg("stream"));
  m.def("weight_only_gemm_cuda", [](const py::tuple& x, const py::tuple& wq, uintptr_t ws, uintptr_t bias, int act,
                                    const py::tuple& y, uintptr_t stream) {
    const kf::Mat xm = kf::to_mat(x, "x"), wm = kf::to_mat(wq, "w_q"), ym = kf::to_mat(y, "out");
    py::gil_scoped_release nogil;
    kf::cuda::weight_only_gemm(xm, wm, kf::to_ptr<const float>(ws), kf::to_ptr<const float>(bias), act, ym, stream);
  }, py::arg("x"), py::arg("w_q"), py::arg("w_scale"), py::arg("bias"), py::arg("act"), py::arg("out"), py::arg("stream"));
#endif
}

}  // namespace

KF_REGISTER_FAMILY(int8_gemm, bind);
