"""Column statistics: count of finite values, NaN count, mean, M2, min, max per column, in one
pass. Results are mergeable with Chan's formula (``merge_stats``), so chunked, streamed and
distributed fits equal a one-shot fit."""

from __future__ import annotations

import numpy as np
import torch

from kernelflow._array import check_float_matrix, mat
from kernelflow.ops._registry import kernel_op

STAT_ROWS = ("count", "nan_count", "mean", "m2", "min", "max")


def column_stats_reference(x: torch.Tensor) -> torch.Tensor:
    """float64 reference. x [rows, cols] -> [6, cols] float64; min/max are +inf/-inf for a column with no finite value."""
    xd = x.detach().to(torch.float64)
    fin = torch.isfinite(xd)
    n = fin.sum(0, dtype=torch.float64)
    nan = torch.isnan(xd).sum(0, dtype=torch.float64)
    z = torch.where(fin, xd, torch.zeros((), dtype=torch.float64, device=xd.device))
    mean = torch.where(n > 0, z.sum(0) / n.clamp_min(1), torch.zeros_like(n))
    d = torch.where(fin, xd - mean, torch.zeros((), dtype=torch.float64, device=xd.device))
    m2 = (d * d).sum(0)
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=xd.device)
    mn = torch.where(fin, xd, inf).amin(0) if xd.shape[0] else torch.full_like(n, float("inf"))
    mx = torch.where(fin, xd, -inf).amax(0) if xd.shape[0] else torch.full_like(n, float("-inf"))
    return torch.stack([n, nan, mean, m2, mn, mx])


@kernel_op("kernelflow::column_stats", triton="kernelflow.triton.stats")
def _column_stats_op(x: torch.Tensor, backend: str) -> torch.Tensor:
    """x [rows, cols] float32/float64 -> [6, cols] float64 (STAT_ROWS), float64 accumulation."""


_column_stats_op.kernel("torch")(lambda k, x: column_stats_reference(x))


@_column_stats_op.kernel("triton")
def _(k, x):
    return k.triton.column_stats(x)


@_column_stats_op.kernel("cpu")
def _(k, x):
    out = torch.empty((6, x.shape[1]), dtype=torch.float64)
    k.C.column_stats_cpu(mat(x), out.data_ptr())
    return out


@_column_stats_op.kernel("cuda")
def _(k, x):
    out = torch.empty((6, x.shape[1]), dtype=torch.float64, device=x.device)
    nbytes = k.C.column_stats_cuda_workspace(x.shape[0], x.shape[1])
    ws = torch.empty(max(nbytes, 1), dtype=torch.uint8, device=x.device)  # [nbytes] block partials
    k.C.column_stats_cuda(mat(x), out.data_ptr(), ws.data_ptr(), nbytes, k.stream)
    return out


@_column_stats_op.register_fake
def _(x: torch.Tensor, backend: str) -> torch.Tensor:
    return x.new_empty((6, x.shape[1]), dtype=torch.float64)


def column_stats(x: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """Per-column statistics of x [rows, cols] (float32/float64, any strides) in one pass.

    Returns [6, cols] float64 on x's device: rows are ``STAT_ROWS`` (count of finite values,
    NaN count, mean, M2, min, max over the finite values).
    """
    check_float_matrix(x)
    return _column_stats_op(x, _column_stats_op.resolve(backend, x.device))


def merge_stats(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor):
    """Chan's parallel merge of two [6, cols] statistics blocks (float64). Exact for count, NaN
    count, min and max; mean and M2 as accurate as a one-shot pass."""
    lib = torch if isinstance(a, torch.Tensor) else np
    na, nana, ma, m2a, mna, mxa = (a[i] for i in range(6))
    nb, nanb, mb, m2b, mnb, mxb = (b[i] for i in range(6))
    n = na + nb
    delta = mb - ma
    w = lib.where(n > 0, nb / lib.where(n > 0, n, 1), 0)
    mean = ma + delta * w
    m2 = m2a + m2b + delta * delta * na * w
    return lib.stack([n, nana + nanb, mean, m2, lib.minimum(mna, mnb), lib.maximum(mxa, mxb)])
