// Fused distillation loss + gradient on the CPU, one source compiled per ISA level (cpu/vecf.h):
// OpenMP over rows. Per row, chunks of kChunk classes: a max sweep, then one sweep of vector exps
// (s/T, t/T and s against their chunk maxima, fp32 sums per chunk) whose values are kept in a
// per-thread row scratch, merged across chunks online (fp32). The gradient sweep rescales the kept
// exps by one scalar per chunk, so each class costs 3 exps, not 6, and the logits are read once.
#include "cpu/distill.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/cpu_isa.h"
#include "cpu/vecf.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // vectors by value between inlined helpers (cpu/vecf.h)

namespace kf::cpu {
namespace {
using vec::ld;
using vec::st;
using vec::lanes;

constexpr int64_t kChunk = 1024;  // classes per chunk: its fp32 logits and exps stay in L1

// Merge a chunk's (max, sum, weighted sum) into the running (m, z, w). A chunk whose maximum is
// -inf adds nothing; a row that is -inf everywhere stays at m = -inf and ends as NaN, like
// torch.softmax.
inline void merge(float& m, float& z, float& w, float cm, float cz, float cw) {
  if (cm == -INFINITY) return;
  if (cm > m) { const float f = std::exp(m - cm); z = z * f + cz; w = w * f + cw; m = cm; }
  else { const float f = std::exp(cm - m); z += cz * f; w += cw * f; }
}

struct Args {
  const void* s;            // [rows, C] student logits, strides s_rs, s_cs (elements)
  const void* t;            // [rows, C] teacher logits, strides t_rs, t_cs
  const int64_t* labels;    // [rows]
  float* loss;              // [rows]
  void* grad;               // [rows, C], row stride g_rs, unit column stride; dtype of s
  std::atomic<int64_t>* bad_row;
  int64_t rows, C, s_rs, s_cs, t_rs, t_cs, g_rs, ignore_index;
  float wce, invT, kl_weight;
  DType dtype;
};

// Row r of a logits matrix as fp32: the row itself when float32 and contiguous, else converted
// (16-bit: the level's widening; strided: gathered) into buf [C].
template <class L>
KF_INLINE const float* row_f32(const void* base, DType dt, int64_t r, int64_t rs, int64_t cs, int64_t C, float* buf) {
  if (dt == DType::f32) {
    const float* p = static_cast<const float*>(base) + r * rs;
    if (cs == 1) return p;
    for (int64_t j = 0; j < C; ++j) buf[j] = p[j * cs];
    return buf;
  }
  const uint16_t* p = static_cast<const uint16_t*>(base) + r * rs;
  if (cs == 1) {
    if (dt == DType::f16) L::widen_f16(p, C, buf);
    else L::widen_bf16(p, C, buf);
    return buf;
  }
  for (int64_t j = 0; j < C; ++j) buf[j] = dt == DType::f16 ? half_bits_to_float(p[j * cs]) : bf16_bits_to_float(p[j * cs]);
  return buf;
}

template <class L>
KF_INLINE void distill_thread(const Args& A) {
  using V = typename L::V;
  constexpr int W = lanes<V>;
  const int64_t C = A.C, nchunks = (C + kChunk - 1) / kChunk;
  const float invT = A.invT;
  // per thread: fp32 s and t rows (when converted), the kept exps of a, b, x, the fp32 gradient row
  // (16-bit output), and the chunk maxima
  std::vector<float> buf(6 * C + 3 * nchunks);
  float* sbuf = buf.data();
  float* tbuf = sbuf + C;
  float* ea = tbuf + C;
  float* eb = ea + C;
  float* ex = eb + C;
  float* gbuf = ex + C;
  float* cmA = gbuf + C;
  float* cmB = cmA + nchunks;
  float* cmX = cmB + nchunks;
#ifdef _OPENMP
  const int64_t th = omp_get_thread_num(), nth = omp_get_num_threads();
#else
  const int64_t th = 0, nth = 1;
#endif
  for (int64_t r = A.rows * th / nth; r < A.rows * (th + 1) / nth; ++r) {
    const int64_t y = A.labels[r];
    const bool use_ce = y != A.ignore_index;
    if (use_ce && (y < 0 || y >= C)) {
      A.bad_row->store(r);
      continue;
    }
    const float* sx = row_f32<L>(A.s, A.dtype, r, A.s_rs, A.s_cs, C, sbuf);
    const float* tx = row_f32<L>(A.t, A.dtype, r, A.t_rs, A.t_cs, C, tbuf);
    // running maxima / sums: a = s/T, b = t/T, x = s; wb = sum exp(b - mb) * (b - a) for the KL cross term
    float ma = -INFINITY, za = 0.f, mb = -INFINITY, zb = 0.f, wb = 0.f, mx = -INFINITY, zx = 0.f;
    bool nan = false;
    for (int64_t c = 0; c < nchunks && !nan; ++c) {
      const int64_t c0 = c * kChunk, n = std::min(kChunk, C - c0);
      const float* xs = sx + c0;
      const float* ts = tx + c0;
      V vmx = vec::splat<V>(-INFINITY), vmt = vmx;
      vec::vi_t<V> bad{};
      int64_t j = 0;
      for (; j + W <= n; j += W) {
        const V xv = vec::loadu<V>(xs + j), tv = vec::loadu<V>(ts + j);
        vmx = vec::vmax(vmx, xv);
        vmt = vec::vmax(vmt, tv);
        bad |= (vec::vi_t<V>)((xv != xv) | (tv != tv));
      }
      float cmx = vec::hmax(vmx), cmt = vec::hmax(vmt);
      bool cnan = false;
      for (; j < n; ++j) {
        cmx = vec::vmax(cmx, xs[j]);
        cmt = vec::vmax(cmt, ts[j]);
        cnan |= (xs[j] != xs[j]) || (ts[j] != ts[j]);
      }
      for (int i = 0; i < W; ++i) cnan |= bad[i] != 0;
      if (cnan) { nan = true; break; }  // NaN anywhere in the row makes the whole row NaN
      // x * invT is monotone in x (invT > 0), so the chunk maxima of a and b are these products
      const float cma = cmx * invT, cmb = cmt * invT;
      cmA[c] = cma; cmB[c] = cmb; cmX[c] = cmx;
      // an all -inf chunk: exps against 0 are 0 (not exp(-inf + inf) = NaN); it merges as nothing
      const float oa = cma == -INFINITY ? 0.f : cma, ob = cmb == -INFINITY ? 0.f : cmb, ox = cmx == -INFINITY ? 0.f : cmx;
      V va{}, vb{}, vw{}, vx{};
      float sa = 0.f, sb = 0.f, swb = 0.f, sxs = 0.f;
      auto body = [&](auto tg, int64_t k, auto& pa, auto& pb, auto& pw, auto& px) {
        const auto xv = ld(tg, xs + k);
        const auto av = xv * invT, bv = ld(tg, ts + k) * invT;
        const auto e1 = vec::exp(av - oa), e2 = vec::exp(bv - ob), e3 = vec::exp(xv - ox);
        st(tg, ea + c0 + k, e1);
        st(tg, eb + c0 + k, e2);
        st(tg, ex + c0 + k, e3);
        pa += e1;
        pb += e2;
        pw += vec::where_nonzero(e2, e2 * (bv - av));  // p_t = 0 adds nothing even against a = -inf
        px += e3;
      };
      for (j = 0; j + W <= n; j += W) body(vec::VT<V>{}, j, va, vb, vw, vx);
      for (; j < n; ++j) body(vec::ST{}, j, sa, sb, swb, sxs);
      float unused = 0.f;
      merge(ma, za, unused, cma, vec::hsum(va) + sa, 0.f);
      merge(mb, zb, wb, cmb, vec::hsum(vb) + sb, vec::hsum(vw) + swb);
      merge(mx, zx, unused, cmx, vec::hsum(vx) + sxs, 0.f);
    }
    float* gr;  // where the fp32 gradient row is formed: in place for float32, else gbuf
    if (A.dtype == DType::f32) gr = static_cast<float*>(A.grad) + r * A.g_rs;
    else gr = gbuf;
    if (nan) {
      A.loss[r] = NAN;
      std::fill(gr, gr + C, NAN);
    } else {
      const float lse_a = ma + std::log(za), lse_b = mb + std::log(zb), lse_x = mx + std::log(zx);
      const float kl = wb / zb - lse_b + lse_a;  // sum p_t (b - a) - lse_b + lse_a
      float row_loss = A.kl_weight * kl;
      if (use_ce) row_loss += A.wce * (lse_x - sx[y]);
      A.loss[r] = row_loss;
      const float gk = A.kl_weight * invT, gc = use_ce ? A.wce : 0.f;
      for (int64_t c = 0; c < nchunks; ++c) {
        const int64_t c0 = c * kChunk, n = std::min(kChunk, C - c0);
        // softmax = kept exp * exp(chunk max - lse); a chunk that is -inf throughout has p = 0
        const float fa = cmA[c] == -INFINITY ? 0.f : gk * std::exp(cmA[c] - lse_a);
        const float fb = cmB[c] == -INFINITY ? 0.f : gk * std::exp(cmB[c] - lse_b);
        const float fx = cmX[c] == -INFINITY ? 0.f : gc * std::exp(cmX[c] - lse_x);
        vec::for_each<V>(n, [&](auto tg, int64_t k) {
          const int64_t j = c0 + k;
          st(tg, gr + j, ld(tg, ea + j) * fa - ld(tg, eb + j) * fb + ld(tg, ex + j) * fx);
        });
      }
      if (use_ce) gr[y] -= gc;
    }
    if (A.dtype != DType::f32) {
      uint16_t* o = static_cast<uint16_t*>(A.grad) + r * A.g_rs;
      if (A.dtype == DType::f16) L::narrow_f16(gr, C, o);
      else L::narrow_bf16(gr, C, o);
    }
  }
}

// One entry point per level; the parallel region is written here so that its outlined body
// carries the level's target (cpu/vecf.h).
#define KF_DISTILL_LEVEL(LVL, TARGET, CLS) \
  TARGET void run_##LVL(const Args& a) { _Pragma("omp parallel if (a.rows * a.C >= (1 << 14))") distill_thread<vec::CLS>(a); }
KF_DISTILL_LEVEL(avx512, KF_TARGET_AVX512, Avx512)
KF_DISTILL_LEVEL(avx2, KF_TARGET_AVX2, Avx2)
KF_DISTILL_LEVEL(portable, , Portable)
#undef KF_DISTILL_LEVEL

}  // namespace

const char* distill_cpu_path() { return isa_name(isa()); }

void distill_loss(const Mat& s, const Mat& t, const int64_t* labels, const float* ce_weight, float temperature,
                  float kl_weight, int64_t ignore_index, float* loss, const Mat& grad) {
  check_distill_args(s, t, grad, temperature);
  if (s.rows == 0) return;
  require_nonnull(s.data, 1, "student_logits");
  require_nonnull(t.data, 1, "teacher_logits");
  require_nonnull(labels, 1, "labels");
  require_nonnull(ce_weight, 1, "ce_weight");
  require_nonnull(loss, 1, "loss");
  require_nonnull(grad.data, 1, "grad");
  std::atomic<int64_t> bad_row{-1};
  const Args a{s.data, t.data, labels, loss, grad.data, &bad_row, s.rows, s.cols, s.rs, s.cs, t.rs, t.cs, grad.rs,
               ignore_index, *ce_weight, 1.0f / temperature, kl_weight, s.dtype};
  KF_ISA_DISPATCH(run, a);
  const int64_t br = bad_row.load();
  if (br >= 0)
    throw std::invalid_argument("labels: row " + std::to_string(br) + " has label " + std::to_string(labels[br]) +
                                ", outside [0, " + std::to_string(s.cols) + ") and not ignore_index");
}

}  // namespace kf::cpu
