"""Exact column quantiles in Triton: radix select over the values' bit patterns.

The launcher counts each column's non-NaN values and turns every q into the two ranks numpy's
linear rule reads (``kernelflow.ops.quantile.quantile_index``). One program per (column, rank)
then selects that order statistic in ``BITS / 4`` passes over the column, one 4-bit digit per
pass, most significant first: it counts, among the values whose key agrees with the prefix
chosen so far, how many carry each of the 16 digits, and follows the digit bucket that holds
the rank. Keys are the float bits as a signed integer with the magnitude bits of negatives
flipped, which orders them like the floats; the top digit is taken with an arithmetic shift
(+8), so signed keys need no unsigned arithmetic. Correct for any number of rows (the column is
streamed in BLOCK-row tiles); the interpolation runs in float64 in torch with numpy's formula.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _radix_select_kernel(
    x_ptr,  # [rows, cols] float32/float64, strides (stride_r, stride_c)
    rank_ptr,  # [R, cols] int64: rank among the column's non-NaN values (0-based)
    out_ptr,  # [R, cols] float64: the selected order statistic
    rows, cols, stride_r, stride_c,
    BITS: tl.constexpr, BLOCK: tl.constexpr,
):
    j = tl.program_id(0)
    r = tl.program_id(1)
    if BITS == 32:
        ity = tl.int32
        maxpos = 0x7FFFFFFF
    else:
        ity = tl.int64
        maxpos = 0x7FFFFFFFFFFFFFFF
    k = tl.load(rank_ptr + r.to(tl.int64) * cols + j)
    digits = tl.arange(0, 16)
    col = x_ptr + j.to(tl.int64) * stride_c
    pref = tl.zeros([], dtype=ity)
    for p in tl.static_range(BITS // 4):
        shift: tl.constexpr = BITS - 4 * (p + 1)
        counts = tl.zeros([16], dtype=tl.int64)
        for r0 in range(0, rows, BLOCK):
            ridx = r0 + tl.arange(0, BLOCK)
            m = ridx < rows
            v = tl.load(col + ridx.to(tl.int64) * stride_r, mask=m, other=0.0)
            m = m & (v == v)  # NaN is not a value
            b = v.to(ity, bitcast=True)
            key = tl.where(b < 0, b ^ maxpos, b)  # ordered like the floats
            if p == 0:
                d = (key >> shift) + 8  # signed top digit -8..7 -> 0..15
            else:
                d = (key >> shift) & 15
                m = m & ((key >> (shift + 4)) == (pref >> (shift + 4)))
            hit = (d[:, None] == digits[None, :]) & m[:, None]
            counts += tl.sum(hit.to(tl.int64), axis=0)
        cum = tl.cumsum(counts, 0)
        dsel = tl.sum((cum <= k).to(tl.int64), 0)  # first bucket whose cumulative count passes k
        k -= tl.sum(tl.where(digits < dsel, counts, 0), 0)
        if p == 0:
            pref = (dsel - 8).to(ity) << shift
        else:
            pref = pref | (dsel.to(ity) << shift)
    bits = tl.where(pref < 0, pref ^ maxpos, pref)
    val = bits.to(x_ptr.dtype.element_ty, bitcast=True)
    tl.store(out_ptr + r.to(tl.int64) * cols + j, val.to(tl.float64))


def column_quantiles(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """x [rows, cols] float32/float64, q [nq] float64 in [0, 1] -> [nq, cols] float64."""
    from kernelflow.ops.quantile import quantile_index, quantile_lerp  # noqa: PLC0415

    rows, cols = x.shape
    qd = q.to(device=x.device, dtype=torch.float64).reshape(-1)
    nq = qd.numel()
    out = torch.full((nq, cols), float("nan"), dtype=torch.float64, device=x.device)
    if rows == 0 or cols == 0 or nq == 0:
        return out
    n = (~torch.isnan(x)).sum(0)
    lo, hi, gamma = quantile_index(n, qd)
    ranks = torch.stack([lo, hi], 1).reshape(2 * nq, cols).contiguous()  # row 2i: lo of q[i], 2i + 1: hi
    vals = torch.empty((2 * nq, cols), dtype=torch.float64, device=x.device)
    interp = x.device.type == "cpu"
    block = 128 if interp else 1024
    _radix_select_kernel[(cols, 2 * nq)](
        x, ranks, vals, rows, cols, x.stride(0), x.stride(1),
        BITS=32 if x.dtype == torch.float32 else 64, BLOCK=block,
    )
    res = quantile_lerp(vals[0::2], vals[1::2], gamma)
    return torch.where((n > 0)[None, :], res, out)
