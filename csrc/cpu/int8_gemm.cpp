// int8 GEMMs on the CPU over weights packed once (cpu/int8_pack.h) into 16-column panels.
// Three paths, chosen at run time (int8_path()): AVX512-VNNI vpdpbusd / AVX-512 FMA, AVX2 int16
// vpmaddwd / AVX2 FMA, and portable loops. Every path reads the same packed bytes; W8A8 sums are
// exact int32 on all of them. The drivers thread over (panel group, row tile) blocks: each thread
// streams one group of panels (its share of N) and reuses it from cache for every row of its tile,
// so a GEMV (M = 1) reads W once at memory speed and a large M is compute bound.
// Epilogue: scales, bias and activation in fp32, fused into the store of each tile.
#include "cpu/int8_gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/half.h"
#include "common/simd.h"
#include "cpu/int8_pack.h"

namespace kf::cpu {

// ---- path choice ------------------------------------------------------------------------------

const char* int8_path_name(Int8Path p) {
  switch (p) {
    case Int8Path::avx512: return "avx512";
    case Int8Path::avx2: return "avx2";
    default: return "portable";
  }
}

namespace {

// -1: auto (the best supported path). Initialised from KERNELFLOW_INT8_PATH so benchmarks and
// tests can force a path for a whole process.
int initial_forced() {
  const char* e = std::getenv("KERNELFLOW_INT8_PATH");
  if (!e || !*e || std::strcmp(e, "auto") == 0) return -1;
  for (Int8Path p : {Int8Path::portable, Int8Path::avx2, Int8Path::avx512})
    if (std::strcmp(e, int8_path_name(p)) == 0 && int8_path_supported(p)) return static_cast<int>(p);
  return -1;  // an unknown or unsupported name cannot raise at load time: auto (set_int8_path reports it)
}

std::atomic<int>& forced() {
  static std::atomic<int> f{initial_forced()};
  return f;
}

}  // namespace

Int8Path int8_path() {
  const int f = forced().load(std::memory_order_relaxed);
  if (f >= 0) return static_cast<Int8Path>(f);
  if (int8_path_supported(Int8Path::avx512)) return Int8Path::avx512;
  if (int8_path_supported(Int8Path::avx2)) return Int8Path::avx2;
  return Int8Path::portable;
}

void set_int8_path(const std::string& name) {
  if (name == "auto") return forced().store(-1);
  for (Int8Path p : {Int8Path::portable, Int8Path::avx2, Int8Path::avx512})
    if (name == int8_path_name(p)) {
      require(int8_path_supported(p), "int8 path '" + name + "' is not supported by this CPU");
      return forced().store(static_cast<int>(p));
    }
  throw std::invalid_argument("path must be one of 'auto', 'portable', 'avx2', 'avx512'; got '" + name + "'");
}

// ---- packing ----------------------------------------------------------------------------------

void int8_pack(const Mat& wq, uint8_t* out) {
  const int64_t N = wq.rows, K = wq.cols, K4 = int8_pack_k4(K), Np = int8_pack_panels(N);
  const int8_t* wd = static_cast<const int8_t*>(wq.data);
  int8_t* dst = reinterpret_cast<int8_t*>(out);
  int32_t* colsum = reinterpret_cast<int32_t*>(out + Np * K4 * 64);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < Np; ++p) {
    int8_t* pd = dst + p * K4 * 64;
    std::memset(pd, 0, K4 * 64);
    for (int64_t j = 0; j < kPackNR; ++j) {
      const int64_t n = p * kPackNR + j;
      int32_t sum = 0;
      if (n < N) {
        const int8_t* wr = wd + n * wq.rs;
        for (int64_t k = 0; k < K; ++k) {
          pd[(k >> 2) * 64 + j * 4 + (k & 3)] = wr[k];
          sum += wr[k];
        }
      }
      colsum[p * kPackNR + j] = sum;
    }
  }
}

namespace {

// ---- portable micro-kernels (same contract as the ISA ones in int8_pack.h) --------------------
// Partial sums per (column, k mod 4): |partial| <= (K / 4) * 2^14, the total <= K * 2^14 < 2^31.
KF_CLONES void w8a8_portable(const int8_t* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, int32_t* c) {
  for (int i = 0; i < mr; ++i) {
    const int8_t* xr = x + i * ld;
    int32_t acc[64] = {};
    for (int64_t k4 = 0; k4 < K4; ++k4)
      for (int t = 0; t < 64; ++t) acc[t] += int32_t(xr[4 * k4 + (t & 3)]) * int32_t(panel[k4 * 64 + t]);
    for (int j = 0; j < 16; ++j) c[i * 16 + j] = (acc[4 * j] + acc[4 * j + 1]) + (acc[4 * j + 2] + acc[4 * j + 3]);
  }
}

KF_CLONES void wo_portable(const float* x, int64_t ld, int mr, const int8_t* panel, int64_t K4, float* c) {
  for (int i = 0; i < mr; ++i) {
    const float* xr = x + i * ld;
    float acc[64] = {};
    for (int64_t k4 = 0; k4 < K4; ++k4)
      for (int t = 0; t < 64; ++t) acc[t] += xr[4 * k4 + (t & 3)] * float(panel[k4 * 64 + t]);
    for (int j = 0; j < 16; ++j) c[i * 16 + j] = (acc[4 * j] + acc[4 * j + 1]) + (acc[4 * j + 2] + acc[4 * j + 3]);
  }
}

// ---- epilogue ---------------------------------------------------------------------------------

inline float activate(float v, int act) {
  if (act == 1) return v < 0.f ? 0.f : v;  // NaN stays NaN, as torch.relu
  if (act == 2) return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f));
  return v;
}

template <typename O>
inline void put(void* base, int64_t off, float v) {
  if constexpr (std::is_same<O, float>::value) static_cast<float*>(base)[off] = v;
  else if constexpr (std::is_same<O, uint16_t>::value) static_cast<uint16_t*>(base)[off] = float_to_half_bits(v);
  else static_cast<int16_t*>(base)[off] = static_cast<int16_t>(float_to_bf16_bits(v));  // bf16 bits
}

// Stores one output row segment y[m, n0 : n0 + nv] from its accumulators c [nv].
template <typename O>
struct Store {
  const float* rs;  // [M] row scales, null for weight-only
  const float* cs;  // [N]
  const float* bias;  // [N] or null
  int act;
  Mat y;
  template <typename A>
  void operator()(int64_t m, int64_t n0, int64_t nv, const A* c) const {
    const float r = rs ? rs[m] : 1.f;
    for (int64_t j = 0; j < nv; ++j) {
      const int64_t n = n0 + j;
      float v = rs ? static_cast<float>(c[j]) * r * cs[n] : static_cast<float>(c[j]) * cs[n];
      if (bias) v += bias[n];
      put<O>(y.data, m * y.rs + n, activate(v, act));
    }
  }
};

struct AccSink {  // int8_gemm_acc: raw int32 accumulators
  int32_t* acc;
  int64_t N;
  void operator()(int64_t m, int64_t n0, int64_t nv, const int32_t* c) const {
    std::memcpy(acc + m * N + n0, c, nv * sizeof(int32_t));
  }
};

constexpr int64_t kGroup = 4;  // panels per job: 64 columns
// Below this many multiply-adds one thread finishes sooner than a parallel region starts (and, on
// a shared machine, sooner than a descheduled second thread comes back).
constexpr int64_t kParallelWork = int64_t(1) << 22;

// xq [M, K] int8 -> the x layout of `path`: biased u8 (avx512), int16 (avx2) or int8 (portable),
// [M, Kp] zero padded (the bias of a padded zero is 0x80).
std::vector<uint8_t> prepare_x8(const Mat& xq, int64_t Kp, Int8Path path) {
  const int64_t M = xq.rows, K = xq.cols;
  const int64_t es = path == Int8Path::avx2 ? 2 : 1;
  std::vector<uint8_t> buf(M * Kp * es);
  const int8_t* xd = static_cast<const int8_t*>(xq.data);
#pragma omp parallel for schedule(static) if (M * K > (1 << 16))
  for (int64_t m = 0; m < M; ++m) {
    const int8_t* xr = xd + m * xq.rs;
    if (path == Int8Path::avx512) {
      uint8_t* d = buf.data() + m * Kp;
      for (int64_t k = 0; k < K; ++k) d[k] = static_cast<uint8_t>(xr[k]) ^ 0x80u;
      for (int64_t k = K; k < Kp; ++k) d[k] = 0x80u;
    } else if (path == Int8Path::avx2) {
      int16_t* d = reinterpret_cast<int16_t*>(buf.data()) + m * Kp;
      for (int64_t k = 0; k < K; ++k) d[k] = xr[k];
      for (int64_t k = K; k < Kp; ++k) d[k] = 0;
    } else {
      int8_t* d = reinterpret_cast<int8_t*>(buf.data()) + m * Kp;
      for (int64_t k = 0; k < K; ++k) d[k] = xr[k];
      for (int64_t k = K; k < Kp; ++k) d[k] = 0;
    }
  }
  return buf;
}

template <typename Sink>
void w8a8_driver(const Mat& xq, int64_t N, const uint8_t* packed, Int8Path path, const Sink& sink) {
  const int64_t M = xq.rows, K = xq.cols, K4 = int8_pack_k4(K), Kp = 4 * K4, Np = int8_pack_panels(N);
  const int8_t* W = reinterpret_cast<const int8_t*>(packed);
  const int32_t* colsum = reinterpret_cast<const int32_t*>(packed + Np * K4 * 64);
  const std::vector<uint8_t> xb = prepare_x8(xq, Kp, path);
  const int MR = path == Int8Path::avx512 ? 8 : path == Int8Path::avx2 ? 2 : 4;
  const int NP = path == Int8Path::avx512 ? 2 : 1;
  constexpr int64_t TM = 128;
  const int64_t ng = (Np + kGroup - 1) / kGroup, nm = (M + TM - 1) / TM;
#pragma omp parallel for collapse(2) schedule(dynamic) if (M * N * K >= kParallelWork)
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t t = 0; t < nm; ++t) {
      alignas(64) int32_t c[8 * 32];
      const int64_t m1 = std::min(M, (t + 1) * TM), p1 = std::min(Np, (g + 1) * kGroup);
      for (int64_t p = g * kGroup; p < p1; p += NP) {
        const int np = static_cast<int>(std::min<int64_t>(NP, p1 - p));
        const int64_t n0 = p * kPackNR, ncols = np * kPackNR, nv = std::min(ncols, N - n0);
        const int8_t* panel = W + p * K4 * 64;
        for (int64_t m = t * TM; m < m1; m += MR) {
          const int mr = static_cast<int>(std::min<int64_t>(MR, m1 - m));
          if (path == Int8Path::avx512) {
            w8a8_avx512(xb.data() + m * Kp, Kp, mr, panel, np, K4, c);
            for (int i = 0; i < mr; ++i)  // undo the u8 bias (modulo 2^32, exact: see int8_pack.h)
              for (int64_t j = 0; j < ncols; ++j)
                c[i * ncols + j] = static_cast<int32_t>(static_cast<uint32_t>(c[i * ncols + j]) -
                                                        128u * static_cast<uint32_t>(colsum[n0 + j]));
          } else if (path == Int8Path::avx2) {
            w8a8_avx2(reinterpret_cast<const int16_t*>(xb.data()) + m * Kp, Kp, mr, panel, K4, c);
          } else {
            w8a8_portable(reinterpret_cast<const int8_t*>(xb.data()) + m * Kp, Kp, mr, panel, K4, c);
          }
          for (int i = 0; i < mr; ++i) sink(m + i, n0, nv, c + i * ncols);
        }
      }
    }
}

template <typename T>
inline float ld(const void* p, int64_t off) {
  if constexpr (std::is_same<T, float>::value) return static_cast<const float*>(p)[off];
  else if constexpr (std::is_same<T, uint16_t>::value) return half_bits_to_float(static_cast<const uint16_t*>(p)[off]);
  else return bf16_bits_to_float(static_cast<const uint16_t*>(p)[off]);
}

// x [M, K] (any strides, float32 / float16 bits / bfloat16 bits) -> fp32 [M, Kp], zero padded.
template <typename T>
std::vector<float> prepare_xf(const Mat& x, int64_t Kp) {
  const int64_t M = x.rows, K = x.cols;
  std::vector<float> buf(M * Kp);
#pragma omp parallel for schedule(static) if (M * K > (1 << 16))
  for (int64_t m = 0; m < M; ++m) {
    float* d = buf.data() + m * Kp;
    for (int64_t k = 0; k < K; ++k) d[k] = ld<T>(x.data, m * x.rs + k * x.cs);
    for (int64_t k = K; k < Kp; ++k) d[k] = 0.f;
  }
  return buf;
}

template <typename Sink>
void wo_driver(const std::vector<float>& xf, int64_t M, int64_t K, int64_t N, const uint8_t* packed, Int8Path path,
               const Sink& sink) {
  const int64_t K4 = int8_pack_k4(K), Kp = 4 * K4, Np = int8_pack_panels(N);
  const int8_t* W = reinterpret_cast<const int8_t*>(packed);
  const int MR = path == Int8Path::avx512 ? 6 : path == Int8Path::avx2 ? 3 : 4;
  constexpr int64_t TM = 120;  // a multiple of every MR
  const int64_t ng = (Np + kGroup - 1) / kGroup, nm = (M + TM - 1) / TM;
#pragma omp parallel for collapse(2) schedule(dynamic) if (M * N * K >= kParallelWork)
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t t = 0; t < nm; ++t) {
      alignas(64) float c[6 * 16];
      const int64_t m1 = std::min(M, (t + 1) * TM), p1 = std::min(Np, (g + 1) * kGroup);
      for (int64_t p = g * kGroup; p < p1; ++p) {
        const int8_t* panel = W + p * K4 * 64;
        const int nh = path == Int8Path::avx2 ? 2 : 1;  // avx2: two 8-column halves
        for (int h = 0; h < nh; ++h) {
          const int64_t n0 = p * kPackNR + h * (kPackNR / nh), w = kPackNR / nh;
          if (n0 >= N) break;
          const int64_t nv = std::min(w, N - n0);
          for (int64_t m = t * TM; m < m1; m += MR) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, m1 - m));
            const float* a = xf.data() + m * Kp;
            if (path == Int8Path::avx512) wo_avx512(a, Kp, mr, panel, K4, c);
            else if (path == Int8Path::avx2) wo_avx2(a, Kp, mr, panel, h, K4, c);
            else wo_portable(a, Kp, mr, panel, K4, c);
            for (int i = 0; i < mr; ++i) sink(m + i, n0, nv, c + i * w);
          }
        }
      }
    }
}

template <typename F>
void by_out(DType d, F&& f) {
  switch (d) {
    case DType::f32: f(float{}); break;
    case DType::f16: f(uint16_t{}); break;
    default: f(int16_t{}); break;
  }
}

void check_common(const Mat& xq, const Mat& wq, const Mat* y, int act) {
  require_dtype(wq.dtype, {DType::i8}, "w_q");
  require(wq.cols == xq.cols, "x and w_q must have the same number of columns K");
  require(wq.cs == 1 || wq.cols <= 1, "w_q must have unit column stride");
  require(act >= 0 && act <= 2, "activation code must be 0 (none), 1 (relu) or 2 (gelu)");
  require_nonnull(xq.data, xq.rows * xq.cols, "x");
  require_nonnull(wq.data, wq.rows * wq.cols, "w_q");
  if (y) {
    require_dtype(y->dtype, {DType::f32, DType::f16, DType::bf16}, "out");
    require(y->rows == xq.rows && y->cols == wq.rows, "out must have shape [M, N]");
    require(y->cs == 1 && y->rs >= y->cols, "out must have unit column stride");
  }
}

void check_xq(const Mat& xq) {
  require_dtype(xq.dtype, {DType::i8}, "x_q");
  require(xq.cs == 1 || xq.cols <= 1, "x_q must have unit column stride");
  require(xq.cols <= kInt8GemmMaxK, "K must be <= 131071 for exact int32 accumulation");
}

// The packed weights to use: the caller's (checked for size), or wq packed into `tmp`.
const uint8_t* packed_or_pack(const Mat& wq, const uint8_t* packed, int64_t bytes, std::vector<uint8_t>& tmp) {
  const int64_t need = int8_packed_bytes(wq.rows, wq.cols);
  if (packed) {
    require(bytes == need, "w_packed must hold " + std::to_string(need) + " bytes for w_q of shape [" +
                               std::to_string(wq.rows) + ", " + std::to_string(wq.cols) + "], got " +
                               std::to_string(bytes));
    return packed;
  }
  tmp.resize(need);
  int8_pack(wq, tmp.data());
  return tmp.data();
}

}  // namespace

void int8_gemm_acc(const Mat& xq, const Mat& wq, int32_t* acc) {
  check_xq(xq);
  check_common(xq, wq, nullptr, 0);
  if (xq.rows == 0 || wq.rows == 0) return;
  std::vector<uint8_t> tmp;
  const uint8_t* p = packed_or_pack(wq, nullptr, 0, tmp);
  w8a8_driver(xq, wq.rows, p, int8_path(), AccSink{acc, wq.rows});
}

void int8_gemm(const Mat& xq, const Mat& wq, const uint8_t* packed, int64_t packed_bytes, const float* row_scale,
               const float* col_scale, const float* bias, int act, const Mat& y) {
  check_xq(xq);
  check_common(xq, wq, &y, act);
  require_nonnull(row_scale, xq.rows, "row_scale");
  require_nonnull(col_scale, wq.rows, "col_scale");
  if (xq.rows == 0 || wq.rows == 0) return;
  std::vector<uint8_t> tmp;
  const uint8_t* p = packed_or_pack(wq, packed, packed_bytes, tmp);
  const Int8Path path = int8_path();
  by_out(y.dtype, [&](auto o) {
    w8a8_driver(xq, wq.rows, p, path, Store<decltype(o)>{row_scale, col_scale, bias, act, y});
  });
}

void weight_only_gemm(const Mat& x, const Mat& wq, const uint8_t* packed, int64_t packed_bytes, const float* w_scale,
                      const float* bias, int act, const Mat& y) {
  require_dtype(x.dtype, {DType::f32, DType::f16, DType::bf16}, "x");
  check_common(x, wq, &y, act);
  require_nonnull(w_scale, wq.rows, "w_scale");
  if (x.rows == 0 || wq.rows == 0) return;
  std::vector<uint8_t> tmp;
  const uint8_t* p = packed_or_pack(wq, packed, packed_bytes, tmp);
  const int64_t Kp = 4 * int8_pack_k4(x.cols);
  std::vector<float> xf = x.dtype == DType::f32   ? prepare_xf<float>(x, Kp)
                          : x.dtype == DType::f16 ? prepare_xf<uint16_t>(x, Kp)
                                                  : prepare_xf<int16_t>(x, Kp);
  const Int8Path path = int8_path();
  by_out(y.dtype, [&](auto o) {
    wo_driver(xf, x.rows, x.cols, wq.rows, p, path, Store<decltype(o)>{nullptr, w_scale, bias, act, y});
  });
}

}  // namespace kf::cpu
