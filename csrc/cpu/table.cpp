// Fused whole-table transform on the CPU: OpenMP over row chunks; per row the numeric columns
// (impute -> clip -> log1p/sqrt -> scale, float64), the missing indicators, then each
// categorical block zeroed and its one set while the row is in L1.
#include "cpu/table.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "common/half.h"

namespace kf::cpu {
namespace {

template <typename T, int OutKind>  // OutKind: 0 f32, 1 f64, 2 f16, 3 bf16
void run(const Mat& x, const Mat& codes, const TableSpec& s, const Mat& out) {
  const T* xd = static_cast<const T*>(x.data);
  const int32_t* cd = static_cast<const int32_t*>(codes.data);
  const int64_t N = out.rows;
  const double* p = s.params;
  const int64_t Fn = s.Fn;
  auto put = [&](void* base, int64_t r, int64_t col, double v) {
    if constexpr (OutKind == 0) static_cast<float*>(base)[r * out.rs + col] = static_cast<float>(v);
    else if constexpr (OutKind == 1) static_cast<double*>(base)[r * out.rs + col] = v;
    else if constexpr (OutKind == 2) static_cast<uint16_t*>(base)[r * out.rs + col] = float_to_half_bits(static_cast<float>(v));
    else static_cast<uint16_t*>(base)[r * out.rs + col] = float_to_bf16_bits(static_cast<float>(v));
  };
  const size_t esize = OutKind == 1 ? 8 : (OutKind == 0 ? 4 : 2);
#pragma omp parallel for schedule(static, 256)
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t j = 0; j < Fn; ++j) {
      double v = static_cast<double>(xd[r * x.rs + j * x.cs]);
      v = (v != v) ? p[j] : v;
      v = v < p[Fn + j] ? p[Fn + j] : (v > p[2 * Fn + j] ? p[2 * Fn + j] : v);  // NaN kept
      const double fn = p[6 * Fn + j];
      if (fn == 1.0) v = std::log1p(v);
      else if (fn == 2.0) v = std::sqrt(v);
      put(out.data, r, s.num_out[j], (v - p[3 * Fn + j]) * p[4 * Fn + j] + p[5 * Fn + j]);
    }
    for (int64_t i = 0; i < s.Fi; ++i) {
      const T v = xd[r * x.rs + s.ind_src[i] * x.cs];
      put(out.data, r, s.ind_out[i], v != v ? 1.0 : 0.0);
    }
    for (int64_t c = 0; c < s.Fc; ++c) {
      const int64_t code = cd[r * codes.rs + c * codes.cs];
      const bool known = code >= 0 && code < s.cat_k[c];
      if (s.cat_mode[c] == 1) {
        put(out.data, r, s.cat_off[c], known ? static_cast<double>(code) : s.cat_unk_value[c]);
        continue;
      }
      const int64_t w = s.cat_width[c];
      if (w == 0) continue;
      char* row = static_cast<char*>(out.data) + (r * out.rs + s.cat_off[c]) * esize;
      std::memset(row, 0, w * esize);  // all-zero bit patterns are +0.0 in every output dtype
      const int64_t slot = known ? s.cat_tab[s.cat_toff[c] + code] : s.cat_unk[c];
      if (slot >= 0 && slot < w) put(out.data, r, s.cat_off[c] + slot, 1.0);
    }
  }
}

template <typename T>
void dispatch(const Mat& x, const Mat& codes, const TableSpec& s, const Mat& out) {
  switch (out.dtype) {
    case DType::f32: return run<T, 0>(x, codes, s, out);
    case DType::f64: return run<T, 1>(x, codes, s, out);
    case DType::f16: return run<T, 2>(x, codes, s, out);
    case DType::bf16: return run<T, 3>(x, codes, s, out);
    default: break;
  }
}

}  // namespace

void table_transform(const Mat& xnum, const Mat& codes, const TableSpec& s, const Mat& out) {
  require_dtype(xnum.dtype, {DType::f32, DType::f64}, "xnum");
  require_dtype(codes.dtype, {DType::i32}, "codes");
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require(xnum.rows == out.rows && codes.rows == out.rows, "xnum, codes and out must have the same number of rows");
  require(xnum.cols == s.Fn && codes.cols == s.Fc && out.cols == s.W, "xnum / codes / out widths do not match the spec");
  require(out.cs == 1 && out.rs >= out.cols, "out must have unit column stride");
  for (int64_t j = 0; j < s.Fn; ++j) require(s.num_out[j] >= 0 && s.num_out[j] < s.W, "num_out out of range");
  for (int64_t i = 0; i < s.Fi; ++i)
    require(s.ind_out[i] >= 0 && s.ind_out[i] < s.W && s.ind_src[i] >= 0 && s.ind_src[i] < s.Fn, "indicator spec out of range");
  for (int64_t c = 0; c < s.Fc; ++c)
    require(s.cat_off[c] >= 0 && s.cat_off[c] + (s.cat_mode[c] == 1 ? 1 : s.cat_width[c]) <= s.W, "categorical block out of range");
  if (out.rows == 0) return;
  if (xnum.dtype == DType::f32) dispatch<float>(xnum, codes, s, out);
  else dispatch<double>(xnum, codes, s, out);
}

}  // namespace kf::cpu
