// Fused distillation loss + gradient on the GPU: one block per row.
// Sweep 1 reads s and t once (16-byte vector loads when contiguous and aligned) and keeps, per
// thread, online (max, sum) for a = s/T, b = t/T and s, plus sum exp(b - mb) * (b - a) for the KL
// cross term; one pack of VEC classes costs one rescale, so ~3 exps per class. A block reduction
// merges the threads' states. Sweep 2 writes the gradient; when 2 * cols * sizeof(T) fits in
// shared memory the row was staged there in sweep 1 and global memory is read exactly once.
// fp32 accumulation throughout.
#include <algorithm>
#include <cmath>

#include "common/cuda_check.h"
#include "cuda/common.cuh"
#include "cpu/distill.h"  // check_distill_args
#include "cuda/distill.h"

namespace kf::cuda {
namespace {

constexpr int kMaxThreads = 512;

struct Online {
  float m, z, w;  // running max, sum exp(x - m), and (for the teacher) sum exp(b - m) * (b - a)
  __device__ __forceinline__ void merge(float cm, float cz, float cw) {
    if (cm == -INFINITY) return;  // a pack/thread with nothing finite adds nothing
    if (cm > m) { const float f = __expf(m - cm); z = z * f + cz; w = w * f + cw; m = cm; }
    else { const float f = __expf(cm - m); z += cz * f; w += cw * f; }
  }
  __device__ __forceinline__ void merge(const Online& o) { merge(o.m, o.z, o.w); }
};

__device__ __forceinline__ Online shfl_down(const Online& o, int d) {
  return {__shfl_down_sync(0xffffffffu, o.m, d), __shfl_down_sync(0xffffffffu, o.z, d),
          __shfl_down_sync(0xffffffffu, o.w, d)};
}

// Block-wide merge of three states; the result is broadcast to every thread.
__device__ void block_merge(Online st[3], Online* red /* [3 * 32] shared */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
#pragma unroll
  for (int k = 0; k < 3; ++k)
    for (int d = 16; d > 0; d >>= 1) st[k].merge(shfl_down(st[k], d));
  if (lane == 0)
    for (int k = 0; k < 3; ++k) red[k * 32 + warp] = st[k];
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int k = 0; k < 3; ++k) {
      Online v = lane < nw ? red[k * 32 + lane] : Online{-INFINITY, 0.f, 0.f};
      for (int d = 16; d > 0; d >>= 1) v.merge(shfl_down(v, d));
      if (lane == 0) red[k * 32] = v;
    }
  }
  __syncthreads();
  for (int k = 0; k < 3; ++k) st[k] = red[k * 32];
}

// A pack of VEC consecutive classes; VEC_LOAD: one 16-byte load (contiguous, aligned, cols % VEC == 0).
template <typename T, int VEC, bool VEC_LOAD>
__device__ __forceinline__ void load_pack(const T* __restrict__ row, int64_t cs, int64_t c0, int64_t C, float v[VEC]) {
  if constexpr (VEC_LOAD) {
    const float4 raw = *reinterpret_cast<const float4*>(row + c0);
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int k = 0; k < VEC; ++k) v[k] = to_float<T>(e[k]);
  } else {
#pragma unroll
    for (int k = 0; k < VEC; ++k) v[k] = (c0 + k < C) ? to_float<T>(row[(c0 + k) * cs]) : -INFINITY;
  }
}

template <typename T, int VEC, bool VEC_LOAD>
__device__ __forceinline__ void store_pack(T* __restrict__ row, int64_t c0, int64_t C, const float v[VEC]) {
  if constexpr (VEC_LOAD) {
    float4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int k = 0; k < VEC; ++k) e[k] = from_compute<T, float>(v[k]);
    *reinterpret_cast<float4*>(row + c0) = raw;
  } else {
#pragma unroll
    for (int k = 0; k < VEC; ++k)
      if (c0 + k < C) row[c0 + k] = from_compute<T, float>(v[k]);
  }
}

template <typename T, bool VEC_LOAD, bool CACHE>
__global__ void __launch_bounds__(kMaxThreads)
distill_kernel(const T* __restrict__ s, int64_t srs, int64_t scs,  // [rows, C] student logits
               const T* __restrict__ t, int64_t trs, int64_t tcs,  // [rows, C] teacher logits
               const int64_t* __restrict__ labels,                 // [rows]
               const float* __restrict__ ce_weight,                // [1]
               int64_t C, float invT, float kl_weight, int64_t ignore_index,
               float* __restrict__ loss,                           // [rows]
               T* __restrict__ grad, int64_t grs) {                // [rows, C], unit column stride
  constexpr int VEC = 16 / sizeof(T);
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* s_cache = reinterpret_cast<T*>(smem_raw);  // [C] when CACHE
  T* t_cache = s_cache + C;                     // [C]
  __shared__ Online red[3 * 32];
  __shared__ float s_label;

  const int64_t r = blockIdx.x;
  const T* sr = s + r * srs;
  const T* tr = t + r * trs;
  T* gr = grad + r * grs;
  const int64_t y = labels[r];
  const bool use_ce = y != ignore_index;
  const bool bad = use_ce && (y < 0 || y >= C);

  Online st[3] = {{-INFINITY, 0.f, 0.f}, {-INFINITY, 0.f, 0.f}, {-INFINITY, 0.f, 0.f}};  // a, b, s
  bool nan = false;
  const int64_t step = static_cast<int64_t>(blockDim.x) * VEC;
  for (int64_t c0 = static_cast<int64_t>(threadIdx.x) * VEC; c0 < C; c0 += step) {
    float x[VEC], b[VEC];
    load_pack<T, VEC, VEC_LOAD>(sr, scs, c0, C, x);
    load_pack<T, VEC, VEC_LOAD>(tr, tcs, c0, C, b);
    if constexpr (CACHE) {
      // staged in the input dtype: the 16-bit cases fit twice as many classes
#pragma unroll
      for (int k = 0; k < VEC; ++k)
        if (c0 + k < C) { s_cache[c0 + k] = from_compute<T, float>(x[k]); t_cache[c0 + k] = from_compute<T, float>(b[k]); }
    }
    float ma = -INFINITY, mb = -INFINITY, mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      nan |= (x[k] != x[k]) | (b[k] != b[k]);
      b[k] *= invT;
      mx = fmaxf(mx, x[k]); mb = fmaxf(mb, b[k]);
    }
    ma = mx * invT;  // T > 0: max(s / T) = max(s) / T
    // a pack with max -inf yields NaN sums (exp(-inf + inf)); Online::merge discards those packs
    float za = 0.f, zb = 0.f, wb = 0.f, zx = 0.f;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const float a = x[k] * invT;
      za += __expf(a - ma);
      zx += __expf(x[k] - mx);
      const float eb = __expf(b[k] - mb);
      zb += eb;
      wb += eb == 0.f ? 0.f : eb * (b[k] - a);  // p_t = 0 adds nothing, even against a = -inf
    }
    st[0].merge(ma, za, 0.f);
    st[1].merge(mb, zb, wb);
    st[2].merge(mx, zx, 0.f);
  }
  nan = __syncthreads_or(nan);
  block_merge(st, red);

  if (threadIdx.x == 0) s_label = (use_ce && !bad) ? to_float<T>(sr[y * scs]) : 0.f;
  __syncthreads();
  const float qnan = __int_as_float(0x7fc00000);
  const float lse_a = nan || bad ? qnan : st[0].m + __logf(st[0].z);
  const float lse_b = nan || bad ? qnan : st[1].m + __logf(st[1].z);
  const float lse_x = nan || bad ? qnan : st[2].m + __logf(st[2].z);
  const float wce = use_ce ? *ce_weight : 0.f;
  if (threadIdx.x == 0) {
    float l = kl_weight * (st[1].w / st[1].z - lse_b + lse_a);
    if (use_ce) l += wce * (lse_x - s_label);
    loss[r] = (nan || bad) ? qnan : l;
  }

  const float gk = kl_weight * invT;
  for (int64_t c0 = static_cast<int64_t>(threadIdx.x) * VEC; c0 < C; c0 += step) {
    float x[VEC], b[VEC], g[VEC];
    if constexpr (CACHE) {
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        x[k] = c0 + k < C ? to_float<T>(s_cache[c0 + k]) : 0.f;
        b[k] = c0 + k < C ? to_float<T>(t_cache[c0 + k]) : 0.f;
      }
    } else {
      load_pack<T, VEC, VEC_LOAD>(sr, scs, c0, C, x);
      load_pack<T, VEC, VEC_LOAD>(tr, tcs, c0, C, b);
    }
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      float v = gk * (__expf(x[k] * invT - lse_a) - __expf(b[k] * invT - lse_b));
      if (use_ce) v += wce * (__expf(x[k] - lse_x) - (c0 + k == y ? 1.f : 0.f));
      g[k] = v;
    }
    store_pack<T, VEC, VEC_LOAD>(gr, c0, C, g);
  }
}

template <typename T, bool VEC_LOAD, bool CACHE>
void launch_one(const Mat& s, const Mat& t, const int64_t* labels, const float* ce_weight, float invT, float kl_weight,
                int64_t ignore_index, float* loss, const Mat& grad, int threads, size_t smem, cudaStream_t st) {
  auto k = distill_kernel<T, VEC_LOAD, CACHE>;
  if (smem > 48 * 1024) KF_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  k<<<static_cast<unsigned>(s.rows), threads, smem, st>>>(
      static_cast<const T*>(s.data), s.rs, s.cs, static_cast<const T*>(t.data), t.rs, t.cs, labels, ce_weight,
      s.cols, invT, kl_weight, ignore_index, loss, static_cast<T*>(grad.data), grad.rs);
  KF_CUDA_CHECK_LAUNCH("distill_kernel");
}

template <typename T>
void launch(const Mat& s, const Mat& t, const int64_t* labels, const float* ce_weight, float invT, float kl_weight,
            int64_t ignore_index, float* loss, const Mat& grad, cudaStream_t st) {
  constexpr int VEC = 16 / sizeof(T);
  const int64_t C = s.cols;
  auto aligned = [&](const void* p, int64_t rs) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && rs % VEC == 0;
  };
  const bool vec = C % VEC == 0 && s.cs == 1 && t.cs == 1 && aligned(s.data, s.rs) && aligned(t.data, t.rs) &&
                   aligned(grad.data, grad.rs);
  const int64_t packs = (C + VEC - 1) / VEC;
  const int threads = static_cast<int>(std::min<int64_t>(kMaxThreads, std::max<int64_t>(32, (packs + 31) / 32 * 32)));
  int dev = 0, optin = 0;
  KF_CUDA_CHECK(cudaGetDevice(&dev));
  KF_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const size_t cache_bytes = 2 * static_cast<size_t>(C) * sizeof(T);
  // Small rows are re-read from L2 anyway; large rows are staged whenever they fit one block's
  // shared memory (bf16 up to ~56k classes on H100), leaving 2 KB for the static reduction buffers.
  const bool cache = C > 4096 && cache_bytes + 2048 <= static_cast<size_t>(optin);
  if (vec) {
    if (cache) launch_one<T, true, true>(s, t, labels, ce_weight, invT, kl_weight, ignore_index, loss, grad, threads, cache_bytes, st);
    else launch_one<T, true, false>(s, t, labels, ce_weight, invT, kl_weight, ignore_index, loss, grad, threads, 0, st);
  } else {
    if (cache) launch_one<T, false, true>(s, t, labels, ce_weight, invT, kl_weight, ignore_index, loss, grad, threads, cache_bytes, st);
    else launch_one<T, false, false>(s, t, labels, ce_weight, invT, kl_weight, ignore_index, loss, grad, threads, 0, st);
  }
}

}  // namespace

void distill_loss(const Mat& s, const Mat& t, const int64_t* labels, const float* ce_weight, float temperature,
                  float kl_weight, int64_t ignore_index, float* loss, const Mat& grad, uintptr_t stream) {
  check_distill_args(s, t, grad, temperature);
  require(s.rows <= 0x7fffffff, "at most 2^31 - 1 rows");
  if (s.rows == 0) return;
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  const float invT = 1.0f / temperature;
  switch (s.dtype) {
    case DType::f32: return launch<float>(s, t, labels, ce_weight, invT, kl_weight, ignore_index, loss, grad, st);
    case DType::f16: return launch<__half>(s, t, labels, ce_weight, invT, kl_weight, ignore_index, loss, grad, st);
    case DType::bf16: return launch<__nv_bfloat16>(s, t, labels, ce_weight, invT, kl_weight, ignore_index, loss, grad, st);
    default: break;
  }
}

}  // namespace kf::cuda
