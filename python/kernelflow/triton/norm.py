"""Fused LayerNorm / RMSNorm in Triton: a program per row for the forward; fp32 accumulation.
A row that fits one BLOCK is read once and kept in registers (the backward then also keeps its
dweight / dbias partial sums in registers); longer rows are processed in BLOCK chunks, re-read
from cache, with the partial sums accumulated in place in global memory. Same formulas and buffers as
csrc/cpu/norm.h.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _norm_fwd_kernel(
    x_ptr,  # [rows, n] contiguous, float32/bfloat16/float16
    w_ptr,  # [n] float32 (unused unless HAS_W)
    b_ptr,  # [n] float32 (unused unless HAS_B)
    y_ptr,  # [rows, n] contiguous, x's dtype
    mean_ptr,  # [rows] float32
    rstd_ptr,  # [rows] float32
    n, eps,
    RMS: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr, BLOCK: tl.constexpr, SINGLE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    xr = x_ptr + row * n
    yr = y_ptr + row * n
    if SINGLE:  # the row fits one block: read it once and keep it in registers
        cols = tl.arange(0, BLOCK)
        m = cols < n
        v = tl.load(xr + cols, mask=m, other=0.0).to(tl.float32)
        if RMS:
            mu = 0.0
        else:
            mu = tl.sum(v, axis=0) / n
        d = tl.where(m, v - mu, 0.0)
        rs = 1.0 / tl.sqrt(tl.sum(d * d, axis=0) / n + eps)
        tl.store(mean_ptr + row, mu)
        tl.store(rstd_ptr + row, rs)
        y = d * rs
        if HAS_W:
            y = y * tl.load(w_ptr + cols, mask=m, other=0.0)
        if HAS_B:
            y = y + tl.load(b_ptr + cols, mask=m, other=0.0)
        tl.store(yr + cols, y.to(y_ptr.dtype.element_ty), mask=m)
    else:
        if RMS:
            mu = 0.0
        else:
            acc = tl.zeros([BLOCK], dtype=tl.float32)
            for off in range(0, n, BLOCK):
                cols = off + tl.arange(0, BLOCK)
                acc += tl.load(xr + cols, mask=cols < n, other=0.0).to(tl.float32)
            mu = tl.sum(acc, axis=0) / n
        # squared deviations on a second (cached) read: no cancellation for large means
        acc2 = tl.zeros([BLOCK], dtype=tl.float32)
        for off in range(0, n, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            m = cols < n
            d = tl.where(m, tl.load(xr + cols, mask=m, other=0.0).to(tl.float32) - mu, 0.0)
            acc2 += d * d
        rs = 1.0 / tl.sqrt(tl.sum(acc2, axis=0) / n + eps)
        tl.store(mean_ptr + row, mu)
        tl.store(rstd_ptr + row, rs)
        for off in range(0, n, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            m = cols < n
            y = (tl.load(xr + cols, mask=m, other=0.0).to(tl.float32) - mu) * rs
            if HAS_W:
                y = y * tl.load(w_ptr + cols, mask=m, other=0.0)
            if HAS_B:
                y = y + tl.load(b_ptr + cols, mask=m, other=0.0)
            tl.store(yr + cols, y.to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _norm_bwd_kernel(
    dy_ptr,  # [rows, n] contiguous
    x_ptr,  # [rows, n] contiguous
    w_ptr,  # [n] float32 (unused unless HAS_W)
    mean_ptr,  # [rows] float32
    rstd_ptr,  # [rows] float32
    dx_ptr,  # [rows, n] contiguous, x's dtype
    dw_ptr,  # [programs, n] float32 partial sums of dy * xhat (unused unless HAS_DW)
    db_ptr,  # [programs, n] float32 partial sums of dy (unused unless HAS_DW)
    rows, n, programs,
    RMS: tl.constexpr, HAS_W: tl.constexpr, HAS_DW: tl.constexpr, BLOCK: tl.constexpr, SINGLE: tl.constexpr,
):
    # program p handles rows p, p + programs, ...; its partial-sum rows are its own (no atomics)
    pid = tl.program_id(0)
    dwr = dw_ptr + pid.to(tl.int64) * n
    dbr = db_ptr + pid.to(tl.int64) * n
    zero64 = pid.to(tl.int64) * 0  # promotes the loop index to int64 offsets
    if SINGLE:  # the row fits one block: x and dy read once, partial sums kept in registers
        cols = tl.arange(0, BLOCK)
        m = cols < n
        if HAS_W:
            w = tl.load(w_ptr + cols, mask=m, other=0.0)
        dw_acc = tl.zeros([BLOCK], dtype=tl.float32)
        db_acc = tl.zeros([BLOCK], dtype=tl.float32)
        for r in range(pid, rows, programs):
            row = r + zero64
            rs = tl.load(rstd_ptr + row)
            if RMS:
                mu = 0.0
            else:
                mu = tl.load(mean_ptr + row)
            xh = tl.where(m, (tl.load(x_ptr + row * n + cols, mask=m, other=0.0).to(tl.float32) - mu) * rs, 0.0)
            d = tl.load(dy_ptr + row * n + cols, mask=m, other=0.0).to(tl.float32)
            g = d
            if HAS_W:
                g = d * w
            m2 = tl.sum(g * xh, axis=0) / n
            if RMS:
                m1 = 0.0
            else:
                m1 = tl.sum(g, axis=0) / n
            dx = rs * (g - m1 - xh * m2)
            tl.store(dx_ptr + row * n + cols, dx.to(dx_ptr.dtype.element_ty), mask=m)
            dw_acc += d * xh
            db_acc += d
        if HAS_DW:
            tl.store(dwr + cols, dw_acc, mask=m)
            tl.store(dbr + cols, db_acc, mask=m)
    else:
        for r in range(pid, rows, programs):
            row = r + zero64
            xr = x_ptr + row * n
            dyr = dy_ptr + row * n
            rs = tl.load(rstd_ptr + row)
            if RMS:
                mu = 0.0
            else:
                mu = tl.load(mean_ptr + row)
            a1 = tl.zeros([BLOCK], dtype=tl.float32)  # fp32 sums of g and g * xhat
            a2 = tl.zeros([BLOCK], dtype=tl.float32)
            for off in range(0, n, BLOCK):
                cols = off + tl.arange(0, BLOCK)
                m = cols < n
                xh = tl.where(m, (tl.load(xr + cols, mask=m, other=0.0).to(tl.float32) - mu) * rs, 0.0)
                g = tl.load(dyr + cols, mask=m, other=0.0).to(tl.float32)
                if HAS_W:
                    g = g * tl.load(w_ptr + cols, mask=m, other=0.0)
                a1 += g
                a2 += g * xh
            m2 = tl.sum(a2, axis=0) / n
            if RMS:
                m1 = 0.0
            else:
                m1 = tl.sum(a1, axis=0) / n
            for off in range(0, n, BLOCK):
                cols = off + tl.arange(0, BLOCK)
                m = cols < n
                xh = (tl.load(xr + cols, mask=m, other=0.0).to(tl.float32) - mu) * rs
                d = tl.load(dyr + cols, mask=m, other=0.0).to(tl.float32)
                g = d
                if HAS_W:
                    g = g * tl.load(w_ptr + cols, mask=m, other=0.0)
                dx = rs * (g - m1 - xh * m2)
                tl.store(dx_ptr + row * n + cols, dx.to(dx_ptr.dtype.element_ty), mask=m)
                if HAS_DW:
                    tl.store(dwr + cols, tl.load(dwr + cols, mask=m, other=0.0) + d * xh, mask=m)
                    tl.store(dbr + cols, tl.load(dbr + cols, mask=m, other=0.0) + d, mask=m)


def _block(n: int, device: torch.device) -> tuple[int, int]:
    # the interpreter's cap is small so that small test rows exercise the chunked loop too
    cap = 8192 if device.type == "cuda" else 256
    block = min(triton.next_power_of_2(n), cap)
    return block, (16 if block >= 8192 else 8 if block >= 2048 else 4)


def norm_fwd(x, weight, bias, eps: float, rms: bool, y, mean, rstd) -> None:
    """x, y [rows, n] contiguous; weight, bias [n] float32 or None; mean, rstd [rows] float32 written."""
    rows, n = x.shape
    if rows == 0 or n == 0:
        return
    block, warps = _block(n, x.device)
    _norm_fwd_kernel[(rows,)](x, weight if weight is not None else rstd, bias if bias is not None else rstd,
                              y, mean, rstd, n, float(eps), RMS=bool(rms), HAS_W=weight is not None,
                              HAS_B=bias is not None, BLOCK=block, SINGLE=block >= n, num_warps=warps)


def norm_bwd(dy, x, weight, mean, rstd, rms: bool, dx, dw_partial, db_partial) -> None:
    """dy, x, dx [rows, n] contiguous; weight [n] float32 or None; dw_partial / db_partial
    [programs, n] float32 zero-initialised (accumulated into), or None for no weight gradient."""
    rows, n = x.shape
    if rows == 0 or n == 0:
        return
    block, warps = _block(n, x.device)
    has_dw = dw_partial is not None
    if has_dw:
        programs = dw_partial.shape[0]
    else:
        programs = min(rows, 4 * torch.cuda.get_device_properties(x.device).multi_processor_count) \
            if x.device.type == "cuda" else rows
    dwp = dw_partial if has_dw else rstd
    dbp = db_partial if has_dw else rstd
    _norm_bwd_kernel[(programs,)](dy, x, weight if weight is not None else rstd, mean, rstd, dx, dwp, dbp,
                                  rows, n, programs, RMS=bool(rms), HAS_W=weight is not None, HAS_DW=has_dw,
                                  BLOCK=block, SINGLE=block >= n, num_warps=warps)
