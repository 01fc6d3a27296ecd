"""Column statistics: count of finite values, NaN count, mean, M2, min, max per column, in one
pass. Results are mergeable with Chan's formula (``merge_stats``), so chunked, streamed and
distributed fits equal a one-shot fit."""

from __future__ import annotations

import numpy as np
import torch

from kernelflow import _backend
from kernelflow._array import check_float_matrix, mat
from kernelflow._ext import require_ext

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


@torch.library.custom_op("kernelflow::column_stats", mutates_args=())
def _column_stats_op(x: torch.Tensor, backend: str) -> torch.Tensor:
    cols = x.shape[1]
    if backend == "torch":
        return column_stats_reference(x)
    if backend == "triton":
        from kernelflow.triton.stats import column_stats as triton_stats  # noqa: PLC0415

        return triton_stats(x)
    out = torch.empty((6, cols), dtype=torch.float64, device=x.device)
    C = require_ext()
    if backend == "cpu":
        C.column_stats_cpu(mat(x), out.data_ptr())
    elif backend == "cuda":
        nbytes = C.column_stats_cuda_workspace(x.shape[0], cols)
        ws = torch.empty(max(nbytes, 1), dtype=torch.uint8, device=x.device)
        with torch.cuda.device(x.device):
            stream = torch.cuda.current_stream(x.device).cuda_stream
            C.column_stats_cuda(mat(x), out.data_ptr(), ws.data_ptr(), nbytes, stream)
    else:
        raise ValueError(f"unknown backend {backend!r}")
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
    return _column_stats_op(x, _backend.resolve(backend, x.device))


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
