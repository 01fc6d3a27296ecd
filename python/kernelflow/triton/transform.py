"""Fused impute -> clip -> scale in Triton: each element read once, written once.

Same formula and parameter layout as csrc/cpu/transform.h; arithmetic in float64 for every
input and output (float32 parameters would turn e.g. fill = 1e300, inv_scale = 1e-300 into inf * 0).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


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
    v = tl.where(v != v, fill[None, :], v)
    # comparisons are false for NaN, so an unimputed NaN passes through the clip
    v = tl.where(v < lo[None, :], lo[None, :], tl.where(v > hi[None, :], hi[None, :], v))
    # shift = shift + shift_lo split: (v - shift) is exact near the shift, shift_lo restores its lost digits
    y = ((v - shift[None, :]) - shift_lo[None, :]) * inv[None, :] + off[None, :]
    if out_ptr.dtype.element_ty != tl.float64:
        y = y.to(tl.float32)  # 16-bit outputs round from fp32 (the interpreter cannot cast fp64 -> bf16)
    tl.store(out_ptr + r64 * sor + c64, y.to(out_ptr.dtype.element_ty), mask=mask)


def numeric_transform(x: torch.Tensor, params: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """x [rows, cols]; params [6, cols] float64; out [rows, cols] (unit column stride), written in place."""
    rows, cols = x.shape
    if rows == 0 or cols == 0:
        return out
    compute = torch.float64
    p64 = params.to(torch.float64)
    hi = p64[3].to(compute)
    p = torch.cat([p64.to(compute), (p64[3] - hi.to(torch.float64)).to(compute)[None]]).contiguous()
    interp = x.device.type == "cpu"
    block_r, block_c = (64, 32) if interp else (32, 128)
    grid = (triton.cdiv(rows, block_r), triton.cdiv(cols, block_c))
    _transform_kernel[grid](x, p, out, rows, cols, x.stride(0), x.stride(1), out.stride(0),
                            BLOCK_R=block_r, BLOCK_C=block_c)
    return out
