"""int8 GEMMs in Triton: W8A8 with tl.dot on int8 tiles (int32 accumulation) and weight-only
(int8 weights converted to the activation dtype inside the kernel, fp32 accumulation), both with
the fused epilogue of csrc/cpu/int8_gemm.h: act(acc * row_scale * col_scale + bias) -> out dtype.
Masked loads pad M, N and K with zeros, so no shape needs to divide the tiles.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _epilogue(v, rm, rn, M, N, b_ptr, y_ptr, sym, HAS_BIAS: tl.constexpr, ACT: tl.constexpr):
    nmask = rn < N
    if HAS_BIAS:
        v = v + tl.load(b_ptr + rn, mask=nmask, other=0.0)[None, :]
    if ACT == 1:
        v = tl.where(v < 0.0, 0.0, v)  # NaN stays NaN, as torch.relu
    elif ACT == 2:
        v = 0.5 * v * (1.0 + tl.math.erf(v * 0.70710678118654752))
    mask = (rm[:, None] < M) & nmask[None, :]
    tl.store(y_ptr + rm[:, None].to(tl.int64) * sym + rn[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _w8a8_kernel(
    x_ptr,   # [M, K] int8, row stride sxm, unit column stride
    w_ptr,   # [N, K] int8, row stride swn, unit column stride
    rs_ptr,  # [M] float32
    cs_ptr,  # [N] float32
    b_ptr,   # [N] float32 (unused unless HAS_BIAS)
    y_ptr,   # [M, N] out dtype, row stride sym
    M, N, K, sxm, swn, sym,
    HAS_BIAS: tl.constexpr, ACT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    xp = x_ptr + rm[:, None].to(tl.int64) * sxm + rk[None, :]
    wp = w_ptr + rn[None, :].to(tl.int64) * swn + rk[:, None]  # [BLOCK_K, BLOCK_N] view of w^T
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)  # exact int32 accumulation
    for k0 in range(0, K, BLOCK_K):
        a = tl.load(xp, mask=(rm[:, None] < M) & (k0 + rk[None, :] < K), other=0)
        b = tl.load(wp, mask=(rn[None, :] < N) & (k0 + rk[:, None] < K), other=0)
        acc = tl.dot(a, b, acc, out_dtype=tl.int32)
        xp += BLOCK_K
        wp += BLOCK_K
    rs = tl.load(rs_ptr + rm, mask=rm < M, other=0.0)
    cs = tl.load(cs_ptr + rn, mask=rn < N, other=0.0)
    v = acc.to(tl.float32) * rs[:, None] * cs[None, :]
    _epilogue(v, rm, rn, M, N, b_ptr, y_ptr, sym, HAS_BIAS, ACT)


@triton.jit
def _weight_only_kernel(
    x_ptr,   # [M, K] float32/float16/bfloat16, strides (sxm, sxk)
    w_ptr,   # [N, K] int8, row stride swn, unit column stride
    ws_ptr,  # [N] float32
    b_ptr,   # [N] float32 (unused unless HAS_BIAS)
    y_ptr,   # [M, N] out dtype, row stride sym
    M, N, K, sxm, sxk, swn, sym,
    HAS_BIAS: tl.constexpr, ACT: tl.constexpr, WIDEN: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    xp = x_ptr + rm[:, None].to(tl.int64) * sxm + rk[None, :].to(tl.int64) * sxk
    wp = w_ptr + rn[None, :].to(tl.int64) * swn + rk[:, None]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)  # fp32 accumulation
    for k0 in range(0, K, BLOCK_K):
        a = tl.load(xp, mask=(rm[:, None] < M) & (k0 + rk[None, :] < K), other=0.0)
        b = tl.load(wp, mask=(rn[None, :] < N) & (k0 + rk[:, None] < K), other=0)
        if WIDEN:  # the interpreter's numpy dot has no bfloat16: widen there (exact, fp32 anyway)
            a = a.to(tl.float32)
        # |q| <= 127 is exact in every 16-bit float type; fp32 inputs use a full-precision dot
        acc = tl.dot(a, b.to(a.dtype), acc, input_precision=PRECISION, out_dtype=tl.float32)
        xp += BLOCK_K * sxk
        wp += BLOCK_K
    ws = tl.load(ws_ptr + rn, mask=rn < N, other=0.0)
    _epilogue(acc * ws[None, :], rm, rn, M, N, b_ptr, y_ptr, sym, HAS_BIAS, ACT)


def int8_gemm(xq, wq, row_scale, col_scale, bias, act: int, out: torch.Tensor) -> None:
    M, K = xq.shape
    N = wq.shape[0]
    if M == 0 or N == 0:
        return
    if xq.device.type == "cpu":  # interpreter: the smallest tiles tl.dot takes
        bm, bn, bk, extra = 16, 16, 32, {}
    else:
        bm, bn, bk, extra = 128, 128, 64, {"num_warps": 8, "num_stages": 3}
    grid = (triton.cdiv(M, bm), triton.cdiv(N, bn))
    _w8a8_kernel[grid](xq, wq, row_scale, col_scale, bias if bias is not None else col_scale, out,
                       M, N, K, xq.stride(0), wq.stride(0), out.stride(0),
                       HAS_BIAS=bias is not None, ACT=act, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, **extra)


def weight_only_gemm(x, wq, w_scale, bias, act: int, out: torch.Tensor) -> None:
    M, K = x.shape
    N = wq.shape[0]
    if M == 0 or N == 0:
        return
    if x.device.type == "cpu":
        bm, bn, bk, extra = 16, 16, 32, {}
    elif M <= 16:  # GEMV-like: narrow M tile, wide K tile, many programs along N
        bm, bn, bk, extra = 16, 64, 256, {"num_warps": 4, "num_stages": 3}
    else:
        bm, bn, bk, extra = 64, 128, 64, {"num_warps": 4, "num_stages": 3}
    grid = (triton.cdiv(M, bm), triton.cdiv(N, bn))
    _weight_only_kernel[grid](x, wq, w_scale, bias if bias is not None else w_scale, out,
                              M, N, K, x.stride(0), x.stride(1), wq.stride(0), out.stride(0),
                              HAS_BIAS=bias is not None, ACT=act,
                              WIDEN=x.device.type == "cpu" and x.dtype == torch.bfloat16,
                              PRECISION="ieee" if x.dtype == torch.float32 else "tf32", BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, **extra)
