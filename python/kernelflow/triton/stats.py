"""Column statistics in Triton: one read of x.

Each program owns a column block and ``ROWS_PER_PROG`` rows; it summarises ``BLOCK_R`` rows at a
time (count, mean, M2 of the finite values, two-pass within the tile) and folds the summaries
together with Chan's formula, in float64 for every input (float32 squares overflow past 1.8e19
and lose denormals). Partials
[programs, 6, cols] are merged exactly in float64 by ``merge_partials``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _stats_partial_kernel(
    x_ptr,  # [rows, cols] float32/float64, strides (stride_r, stride_c)
    part_ptr,  # [n_row_progs, 6, cols] float64
    rows, cols, stride_r, stride_c,
    ROWS_PER_PROG: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_r = tl.program_id(0)
    pid_c = tl.program_id(1)
    cidx = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cidx < cols
    acc_t = tl.float64
    n = tl.zeros([BLOCK_C], dtype=acc_t)
    mean = tl.zeros([BLOCK_C], dtype=acc_t)
    m2 = tl.zeros([BLOCK_C], dtype=acc_t)
    nan = tl.zeros([BLOCK_C], dtype=acc_t)
    mn = tl.full([BLOCK_C], float("inf"), dtype=acc_t)
    mx = tl.full([BLOCK_C], float("-inf"), dtype=acc_t)
    r_start = pid_r * ROWS_PER_PROG
    for r0 in range(0, ROWS_PER_PROG, BLOCK_R):
        ridx = r_start + r0 + tl.arange(0, BLOCK_R)
        mask = (ridx[:, None] < rows) & cmask[None, :]
        offs = ridx[:, None].to(tl.int64) * stride_r + cidx[None, :].to(tl.int64) * stride_c
        v = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float64)
        fin = mask & (v == v) & (tl.abs(v) != float("inf"))
        isnan = mask & (v != v)
        nb = tl.sum(fin.to(acc_t), axis=0)
        sb = tl.sum(tl.where(fin, v, 0.0), axis=0)
        meanb = sb / tl.maximum(nb, 1.0)
        d = tl.where(fin, v - meanb[None, :], 0.0)
        m2b = tl.sum(d * d, axis=0)
        nan += tl.sum(isnan.to(acc_t), axis=0)
        mn = tl.minimum(mn, tl.min(tl.where(fin, v, float("inf")), axis=0))
        mx = tl.maximum(mx, tl.max(tl.where(fin, v, float("-inf")), axis=0))
        # Chan merge of (nb, meanb, m2b) into (n, mean, m2)
        nt = n + nb
        delta = meanb - mean
        w = tl.where(nt > 0, nb / tl.maximum(nt, 1.0), 0.0)
        mean = mean + delta * w
        m2 = m2 + m2b + delta * delta * n * w
        n = nt
    base = part_ptr + pid_r.to(tl.int64) * 6 * cols + cidx
    tl.store(base + 0 * cols, n.to(tl.float64), mask=cmask)
    tl.store(base + 1 * cols, nan.to(tl.float64), mask=cmask)
    tl.store(base + 2 * cols, mean.to(tl.float64), mask=cmask)
    tl.store(base + 3 * cols, m2.to(tl.float64), mask=cmask)
    tl.store(base + 4 * cols, mn.to(tl.float64), mask=cmask)
    tl.store(base + 5 * cols, mx.to(tl.float64), mask=cmask)


def merge_partials(part: torch.Tensor) -> torch.Tensor:
    """Exact multi-way Chan merge in float64: part [k, 6, cols] -> [6, cols]."""
    n, nan, mean, m2, mn, mx = part.unbind(1)
    N = n.sum(0)
    gmean = torch.where(N > 0, (n * mean).sum(0) / N.clamp_min(1), torch.zeros_like(N))
    M2 = (m2 + n * (mean - gmean) ** 2).sum(0)
    return torch.stack([N, nan.sum(0), gmean, M2, mn.amin(0), mx.amax(0)])


def column_stats(x: torch.Tensor) -> torch.Tensor:
    """x [rows, cols] float32/float64 -> [6, cols] float64 (count, nan, mean, M2, min, max)."""
    rows, cols = x.shape
    interp = x.device.type == "cpu"
    block_r, block_c = (64, 32) if interp else (64, 32)
    rows_per_prog = block_r * (4 if interp else 32)
    n_r = max(1, triton.cdiv(rows, rows_per_prog))
    part = torch.empty((n_r, 6, cols), dtype=torch.float64, device=x.device)
    if cols == 0:
        return torch.empty((6, 0), dtype=torch.float64, device=x.device)
    grid = (n_r, triton.cdiv(cols, block_c))
    _stats_partial_kernel[grid](
        x, part, rows, cols, x.stride(0), x.stride(1),
        ROWS_PER_PROG=rows_per_prog, BLOCK_R=block_r, BLOCK_C=block_c,
    )
    return merge_partials(part)
