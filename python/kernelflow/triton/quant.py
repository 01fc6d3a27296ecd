"""Row-wise symmetric int8 quantization in Triton (same formula as csrc/cpu/quant.h).

Rounding is half to even, written with floor so the interpreter and the GPU run the same code:
r = floor(y) + (frac > 0.5 or (frac == 0.5 and floor(y) odd)). Divisions are correctly rounded
(tl.div_rn), so scales match the C++ and CUDA kernels bit for bit.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

MIN_ABSMAX = 1e-30  # kf::kQuantMinAbsmax
FLT_MAX = 3.4028234663852886e38


@triton.jit
def _round_sat(y):
    """round half to even, then saturate to [-127, 127] (y is not NaN)."""
    y = tl.minimum(tl.maximum(y, -128.0), 128.0)
    f = tl.floor(y)
    d = y - f
    odd = f - 2.0 * tl.floor(f * 0.5)
    r = tl.where(d > 0.5, f + 1.0, tl.where(d < 0.5, f, f + odd))
    return tl.minimum(tl.maximum(r, -127.0), 127.0)


@triton.jit
def _quantize_rows_kernel(
    x_ptr,  # [M, K] float32/float16/bfloat16, strides (sxm, sxk)
    q_ptr,  # [M, K] int8, row stride sqm, unit column stride
    s_ptr,  # [M] float32
    M, K, sxm, sxk, sqm,
    MIN_AMAX: tl.constexpr, BIG: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < M
    r64 = rows.to(tl.int64)
    amax = tl.zeros([BLOCK_M], dtype=tl.float32)
    bad = tl.zeros([BLOCK_M], dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):  # pass 1: absmax and non-finite flag per row
        ks = k0 + tl.arange(0, BLOCK_K)
        mask = rmask[:, None] & (ks[None, :] < K)
        v = tl.load(x_ptr + r64[:, None] * sxm + ks[None, :].to(tl.int64) * sxk, mask=mask, other=0.0).to(tl.float32)
        a = tl.abs(v)
        fin = a <= BIG  # false for NaN and inf
        bad = tl.maximum(bad, tl.max(tl.where(fin, 0, 1), axis=1))
        amax = tl.maximum(amax, tl.max(tl.where(fin, a, 0.0), axis=1))
    tiny = amax < MIN_AMAX
    safe = tl.where(tiny, 1.0, amax)
    inv = tl.where(tiny, 1.0, tl.div_rn(tl.full([BLOCK_M], 127.0, tl.float32), safe))
    scale = tl.where(tiny, 1.0, tl.div_rn(safe, tl.full([BLOCK_M], 127.0, tl.float32)))
    scale = tl.where(bad > 0, float("nan"), scale)
    tl.store(s_ptr + r64, scale, mask=rmask)
    for k0 in range(0, K, BLOCK_K):  # pass 2 (L2-resident re-read): quantize
        ks = k0 + tl.arange(0, BLOCK_K)
        mask = rmask[:, None] & (ks[None, :] < K)
        v = tl.load(x_ptr + r64[:, None] * sxm + ks[None, :].to(tl.int64) * sxk, mask=mask, other=0.0).to(tl.float32)
        r = _round_sat(tl.where(bad[:, None] > 0, 0.0, v * inv[:, None]))
        tl.store(q_ptr + r64[:, None] * sqm + ks[None, :].to(tl.int64), r.to(tl.int8), mask=mask)


@triton.jit
def _quantize_static_kernel(
    x_ptr,  # [M, K] float, strides (sxm, sxk)
    s_ptr,  # [1] float32
    q_ptr,  # [M, K] int8, row stride sqm
    M, K, sxm, sxk, sqm,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    mask = (rows[:, None] < M) & (ks[None, :] < K)
    r64 = rows[:, None].to(tl.int64)
    k64 = ks[None, :].to(tl.int64)
    inv = tl.div_rn(tl.full([1], 1.0, tl.float32), tl.load(s_ptr + tl.arange(0, 1)))
    v = tl.load(x_ptr + r64 * sxm + k64 * sxk, mask=mask, other=0.0).to(tl.float32)
    r = _round_sat(tl.where(v != v, 0.0, v * inv[:, None]))  # NaN -> 0; +-inf saturates
    tl.store(q_ptr + r64 * sqm + k64, r.to(tl.int8), mask=mask)


@triton.jit
def _dequantize_kernel(
    q_ptr,  # [M, K] int8, strides (sqm, sqk)
    s_ptr,  # [M] float32
    o_ptr,  # [M, K] out dtype, row stride som
    M, K, sqm, sqk, som,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    rmask = rows < M
    mask = rmask[:, None] & (ks[None, :] < K)
    r64 = rows[:, None].to(tl.int64)
    k64 = ks[None, :].to(tl.int64)
    s = tl.load(s_ptr + rows, mask=rmask, other=1.0)
    q = tl.load(q_ptr + r64 * sqm + k64 * sqk, mask=mask, other=0).to(tl.float32)
    tl.store(o_ptr + r64 * som + k64, (q * s[:, None]).to(o_ptr.dtype.element_ty), mask=mask)


def _blocks(x: torch.Tensor, big: tuple[int, int]) -> tuple[int, int]:
    return (16, 32) if x.device.type == "cpu" else big  # interpreter: few, small programs


def quantize_rows(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> None:
    M, K = x.shape
    if M == 0:
        return
    bm, bk = _blocks(x, (4, 1024))
    _quantize_rows_kernel[(triton.cdiv(M, bm),)](x, q, scale, M, K, x.stride(0), x.stride(1), q.stride(0),
                                                  MIN_AMAX=MIN_ABSMAX, BIG=FLT_MAX, BLOCK_M=bm, BLOCK_K=bk)


def quantize_static(x: torch.Tensor, scale: torch.Tensor, q: torch.Tensor) -> None:
    M, K = x.shape
    if M == 0 or K == 0:
        return
    bm, bk = _blocks(x, (16, 256))
    _quantize_static_kernel[(triton.cdiv(M, bm), triton.cdiv(K, bk))](
        x, scale, q, M, K, x.stride(0), x.stride(1), q.stride(0), BLOCK_M=bm, BLOCK_K=bk)


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor, out: torch.Tensor) -> None:
    M, K = q.shape
    if M == 0 or K == 0:
        return
    bm, bk = _blocks(q, (16, 256))
    _dequantize_kernel[(triton.cdiv(M, bm), triton.cdiv(K, bk))](
        q, scale, out, M, K, q.stride(0), q.stride(1), out.stride(0), BLOCK_M=bm, BLOCK_K=bk)
