// One-hot and ordinal encoding on the CPU: OpenMP over rows. A one-hot row is zeroed with one
// vectorised loop and then gets its F ones while it sits in L1, so memory sees each output byte
// once; 7x faster than a branchy compare per element for blocks of ~10 columns.
#include "cpu/onehot.h"

#include <string>
#include <type_traits>

#include "common/half.h"

namespace kf::cpu {
namespace {

inline int64_t slot_of(int32_t code, int64_t K) {
  return (code >= 0 && code < K) ? code : (code == -1 ? K : K + 1);
}

// Layout checks in O(F + T): a bad layout is an error, never an out-of-bounds write.
void check_layout(const int64_t* feat, int64_t F, const int32_t* table, int64_t T, int64_t W) {
  int64_t pos = 0;
  for (int64_t j = 0; j < F; ++j) {
    const int64_t off = feat[j], w = feat[F + j], toff = feat[2 * F + j], K = feat[3 * F + j];
    const std::string col = "column " + std::to_string(j);
    require(w >= 0 && K >= 0 && off == pos, "feat: " + col + " must start at the previous block's end with width >= 0");
    require(toff >= 0 && toff + K + 2 <= T, "feat: " + col + " table slots past the end of table");
    for (int64_t s = 0; s < K + 2; ++s)
      require(table[toff + s] >= -2 && table[toff + s] < w, "table: " + col + " entries must be in [-2, width)");
    pos += w;
  }
  require(pos == W, "out must have as many columns as the layout's widths add up to");
}

// OutKind: 0 float32, 1 float64, 2 float16 bits, 3 bfloat16 bits
template <int OutKind>
void run_one_hot(const Mat& codes, const int64_t* feat, const int32_t* table, const Mat& out, int32_t* errors) {
  using O = std::conditional_t<OutKind == 0, float, std::conditional_t<OutKind == 1, double, uint16_t>>;
  const O one = OutKind == 0 ? O(1) : OutKind == 1 ? O(1) : O(OutKind == 2 ? 0x3C00u : 0x3F80u);
  const O zero = O(0);
  const int64_t rows = codes.rows, F = codes.cols;
  const int32_t* cd = static_cast<const int32_t*>(codes.data);
  const int64_t *off = feat, *toff = feat + 2 * F, *K = feat + 3 * F;
  const int64_t W = out.cols;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    O* __restrict orow = static_cast<O*>(out.data) + r * out.rs;
    const int32_t* crow = cd + r * codes.rs;
#pragma omp simd
    for (int64_t c = 0; c < W; ++c) orow[c] = zero;
    for (int64_t j = 0; j < F; ++j) {
      const int32_t o = table[toff[j] + slot_of(crow[j * codes.cs], K[j])];
      if (o == -2) {
#pragma omp atomic
        errors[j] += 1;
      }
      if (o >= 0) orow[off[j] + o] = one;
    }
  }
}

template <int OutKind>
void run_ordinal(const Mat& codes, const int64_t* feat, const double* table, const Mat& out, int32_t* errors) {
  using O = std::conditional_t<OutKind == 0, float, std::conditional_t<OutKind == 1, double,
            std::conditional_t<OutKind == 4, int64_t, uint16_t>>>;
  const int64_t rows = codes.rows, F = codes.cols;
  const int32_t* cd = static_cast<const int32_t*>(codes.data);
  const int64_t *toff = feat, *K = feat + F, *ebits = feat + 2 * F;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    O* __restrict orow = static_cast<O*>(out.data) + r * out.rs;
    const int32_t* crow = cd + r * codes.rs;
    for (int64_t j = 0; j < F; ++j) {
      const int64_t s = slot_of(crow[j * codes.cs], K[j]);
      const bool err = (s == K[j] && (ebits[j] & 1)) || (s == K[j] + 1 && (ebits[j] & 2));
      double v = table[toff[j] + s];
      if (err) {
        v = 0.0;
#pragma omp atomic
        errors[j] += 1;
      }
      if constexpr (OutKind == 0 || OutKind == 1) orow[j] = static_cast<O>(v);
      else if constexpr (OutKind == 4) orow[j] = (v == v) ? static_cast<int64_t>(v) : 0;  // NaN is rejected in Python
      else if constexpr (OutKind == 2) orow[j] = float_to_half_bits(static_cast<float>(v));
      else orow[j] = float_to_bf16_bits(static_cast<float>(v));
    }
  }
}

void check_common(const Mat& codes, const Mat& out, const void* feat, const int32_t* errors) {
  require_dtype(codes.dtype, {DType::i32}, "codes");
  require(out.rows == codes.rows, "out must have as many rows as codes");
  require(out.cs == 1 || out.rows <= 1 || out.cols <= 1, "out must have unit column stride");
  require_nonnull(codes.data, codes.rows * codes.cols, "codes");
  require_nonnull(out.data, out.rows * out.cols, "out");
  require_nonnull(feat, codes.cols, "feat");
  require_nonnull(errors, codes.cols, "errors");
}

}  // namespace

void one_hot(const Mat& codes, const int64_t* feat, const int32_t* table, int64_t table_size,
             const int32_t* /*slots*/, int64_t /*n_slots*/, const Mat& out, int32_t* errors) {
  check_common(codes, out, feat, errors);
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16}, "out");
  require_nonnull(table, table_size, "table");
  check_layout(feat, codes.cols, table, table_size, out.cols);
  switch (out.dtype) {
    case DType::f32: return run_one_hot<0>(codes, feat, table, out, errors);
    case DType::f64: return run_one_hot<1>(codes, feat, table, out, errors);
    case DType::f16: return run_one_hot<2>(codes, feat, table, out, errors);
    case DType::bf16: return run_one_hot<3>(codes, feat, table, out, errors);
    default: break;
  }
}

void ordinal_encode(const Mat& codes, const int64_t* feat, const double* table, int64_t table_size,
                    const Mat& out, int32_t* errors) {
  check_common(codes, out, feat, errors);
  require_dtype(out.dtype, {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i64}, "out");
  require(out.cols == codes.cols, "out must have the shape of codes");
  require_nonnull(table, table_size, "table");
  const int64_t F = codes.cols;
  for (int64_t j = 0; j < F; ++j)
    require(feat[j] >= 0 && feat[F + j] >= 0 && feat[j] + feat[F + j] + 2 <= table_size,
            "feat: column " + std::to_string(j) + " table slots past the end of table");
  switch (out.dtype) {
    case DType::f32: return run_ordinal<0>(codes, feat, table, out, errors);
    case DType::f64: return run_ordinal<1>(codes, feat, table, out, errors);
    case DType::f16: return run_ordinal<2>(codes, feat, table, out, errors);
    case DType::bf16: return run_ordinal<3>(codes, feat, table, out, errors);
    case DType::i64: return run_ordinal<4>(codes, feat, table, out, errors);
    default: break;
  }
}

}  // namespace kf::cpu
