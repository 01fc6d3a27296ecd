"""Fused impute -> clip -> scale in Triton: each element read once, written once.

Same formula and parameter layout as csrc/common/transform.h; arithmetic in float64 for every
input and output (float32 parameters would turn e.g. fill = 1e300, inv_scale = 1e-300 into inf * 0).
``impute_clip`` and ``scale_shift`` are the element formula of both this kernel and the
whole-table kernel (triton/table.py), and ``with_shift_lo`` builds both kernels' parameter block.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def impute_clip(v, fill, lo, hi):
    """NaN -> fill, then clip to [lo, hi]: comparisons are false for NaN, so an unimputed NaN
    passes through, and lo wins when lo > hi (as csrc/common/transform.h)."""
    v = tl.where(v != v, fill, v)
    below = v < lo
    v = tl.where(v > hi, hi, v)
    return tl.where(below, lo, v)


@triton.jit
def scale_shift(v, shift_hi, shift_lo, inv, off):
    """(v - shift) * inv_scale + offset with shift = shift_hi + shift_lo: (v - shift_hi) is exact
    near the shift and shift_lo restores the digits one float32 shift would lose."""
    return ((v - shift_hi) - shift_lo) * inv + off


def with_shift_lo(params: torch.Tensor, compute: torch.dtype) -> torch.Tensor:
    """params [k, cols] (row 3 = shift) -> [k + 1, cols] of the compute dtype, contiguous, with the
    last row shift - float64(shift in the compute dtype) (zero when computing in float64)."""
    p64 = params.to(torch.float64)
    hi = p64[3].to(compute)
    return torch.cat([p64.to(compute), (p64[3] - hi.to(torch.float64)).to(compute)[None]]).contiguous()


@triton.jit
def _transform_kernel(
    x_ptr,  # [rows, cols] float32/float64, strides (sxr, sxc)
    p_ptr,  # [7, cols] float32 or float64 (the compute type): fill, lo, hi, shift, inv_scale, offset, shift_lo
    out_ptr,  # [rows, cols] output dtype, row stride sor, unit column stride
    rows, cols, sxr, sxc, sor,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_r = tl.program_id(0)
    pid_c = tl.program_id(1)
    ridx = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    cidx = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cidx < cols
    mask = (ridx[:, None] < rows) & cmask[None, :]
    fill = tl.load(p_ptr + 0 * cols + cidx, mask=cmask, other=0.0)
    lo = tl.load(p_ptr + 1 * cols + cidx, mask=cmask, other=0.0)
    hi = tl.load(p_ptr + 2 * cols + cidx, mask=cmask, other=0.0)
    shift = tl.load(p_ptr + 3 * cols + cidx, mask=cmask, other=0.0)
    inv = tl.load(p_ptr + 4 * cols + cidx, mask=cmask, other=0.0)
    off = tl.load(p_ptr + 5 * cols + cidx, mask=cmask, other=0.0)
    shift_lo = tl.load(p_ptr + 6 * cols + cidx, mask=cmask, other=0.0)
    r64 = ridx[:, None].to(tl.int64)
    c64 = cidx[None, :].to(tl.int64)
    v = tl.load(x_ptr + r64 * sxr + c64 * sxc, mask=mask, other=0.0).to(p_ptr.dtype.element_ty)
    v = impute_clip(v, fill[None, :], lo[None, :], hi[None, :])
    y = scale_shift(v, shift[None, :], shift_lo[None, :], inv[None, :], off[None, :])
    if out_ptr.dtype.element_ty != tl.float64:
        y = y.to(tl.float32)  # 16-bit outputs round from fp32 (the interpreter cannot cast fp64 -> bf16)
    tl.store(out_ptr + r64 * sor + c64, y.to(out_ptr.dtype.element_ty), mask=mask)


def numeric_transform(x: torch.Tensor, params: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """x [rows, cols]; params [6, cols] float64; out [rows, cols] (unit column stride), written in place."""
    rows, cols = x.shape
    if rows == 0 or cols == 0:
        return out
    p = with_shift_lo(params, torch.float64)
    interp = x.device.type == "cpu"
    block_r, block_c = (64, 32) if interp else (32, 128)
    grid = (triton.cdiv(rows, block_r), triton.cdiv(cols, block_c))
    _transform_kernel[grid](x, p, out, rows, cols, x.stride(0), x.stride(1), out.stride(0),
                            BLOCK_R=block_r, BLOCK_C=block_c)
    return out
