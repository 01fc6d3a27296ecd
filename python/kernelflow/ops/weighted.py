"""Weighted column statistics: per column the weight of the finite values, the weight of the NaN
values, the weighted mean, weighted M2 = sum w (x - mean)^2, min and max, in one pass (the
layout of ``column_stats``). The blocks are merged with Chan's formula on weights, so
``merge_stats`` combines weighted chunks, partitions and ranks exactly like unweighted ones, and
weight 1 everywhere gives ``column_stats``."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from kernelflow._array import check_float_matrix, mat
from kernelflow.ops._registry import kernel_op


def weighted_column_stats_reference(x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """float64 reference. x [rows, cols], w [rows] or None (all 1) -> [6, cols] float64 (rows of weight 0 are absent)."""
    xd = x.detach().to(torch.float64)
    if w is None:
        w = torch.ones(xd.shape[0], dtype=torch.float64, device=xd.device)
    wd = w.detach().to(device=xd.device, dtype=torch.float64)[:, None]
    fin = torch.isfinite(xd) & (wd != 0)
    wf = torch.where(fin, wd, 0.0)
    W = wf.sum(0)
    nan = torch.where(torch.isnan(xd), wd, 0.0).sum(0)
    s = torch.where(fin, wd * xd, 0.0).sum(0)
    mean = torch.where(W != 0, s / torch.where(W != 0, W, 1.0), 0.0)
    d = torch.where(fin, xd - mean, 0.0)
    m2 = (wf * d * d).sum(0)
    inf = float("inf")
    mn = torch.where(fin, xd, inf).amin(0) if xd.shape[0] else torch.full_like(W, inf)
    mx = torch.where(fin, xd, -inf).amax(0) if xd.shape[0] else torch.full_like(W, -inf)
    return torch.stack([W, nan, mean, m2, mn, mx])


@kernel_op("kernelflow::weighted_column_stats")
def _weighted_op(x: torch.Tensor, w: Optional[torch.Tensor], backend: str) -> torch.Tensor:
    """x [rows, cols] float32/float64, w [rows] float64 or None -> [6, cols] float64, float64 accumulation.
    CUDA tensors run the torch implementation."""


_weighted_op.kernel("torch")(lambda k, x, w: weighted_column_stats_reference(x, w))


@_weighted_op.kernel("cpu")
def _(k, x, w):
    out = torch.empty((6, x.shape[1]), dtype=torch.float64)
    wc = None if w is None else w.to(torch.float64).contiguous()  # [rows] float64
    k.C.weighted_column_stats_cpu(mat(x), 0 if wc is None else wc.data_ptr(), out.data_ptr())
    return out


@_weighted_op.register_fake
def _(x, w, backend):
    return x.new_empty((6, x.shape[1]), dtype=torch.float64)


def weighted_column_stats(x: torch.Tensor, sample_weight: Any, backend: str | None = None) -> torch.Tensor:
    """[6, cols] float64 weighted statistics of x [rows, cols] (float32/float64, any strides) with
    sample_weight [rows] (numpy / torch / list) or None (weight 1 everywhere: column_stats with
    float64 accumulation for float32 input too), on x's device (CUDA tensors: the torch implementation)."""
    check_float_matrix(x)
    if sample_weight is None:
        return _weighted_op(x.detach(), None, _weighted_op.resolve(backend, x.device))
    w = sample_weight if isinstance(sample_weight, torch.Tensor) else torch.from_numpy(np.asarray(sample_weight, dtype=np.float64))
    if w.dim() != 1 or w.shape[0] != x.shape[0]:
        raise ValueError(f"sample_weight must have shape ({x.shape[0]},), got {tuple(w.shape)}")
    w = w.detach().to(device=x.device, dtype=torch.float64)
    return _weighted_op(x.detach(), w, _weighted_op.resolve(backend, x.device))
