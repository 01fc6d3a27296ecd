"""Exact per-column quantiles, NaN ignored, with numpy.nanquantile(method="linear") semantics
(the rule scikit-learn's RobustScaler and QuantileTransformer rely on through np.nanpercentile).

For a column with n non-NaN values v (sorted; +-inf are values) and a probability q, numpy reads
h = (n - 1) q, the order statistics v[floor(h)] and v[floor(h) + 1] (both v[n - 1] once h >= n - 1)
and interpolates with gamma = h - floor(h) (h + 1 past the end), switching the lerp's form at
gamma = 0.5. Every backend follows this arithmetic in float64, so results match numpy on the
float64 values bit for bit on the CPU; an interpolation that touches an infinity gives what numpy
gives (often NaN). A column without any non-NaN value (or N = 0) gives NaN.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from kernelflow._array import check_float_matrix, mat
from kernelflow.ops._registry import kernel_op


def quantile_index(n: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """numpy's linear-method indices. n [cols] int64 (non-NaN counts), q [nq] float64 ->
    lo, hi [nq, cols] int64 and gamma [nq, cols] float64 (lo = hi = 0 where n == 0)."""
    nm1 = (n - 1).to(torch.float64)[None, :]
    h = nm1 * q.to(torch.float64)[:, None]
    above = h >= nm1
    f = torch.floor(h)
    last = (n - 1).clamp_min(0)[None, :].expand_as(h)
    lo = torch.where(above, last, f.to(torch.int64))
    hi = torch.where(above, last, f.to(torch.int64) + 1)
    gamma = torch.where(above, h + 1.0, h - f)
    return lo.clamp_min(0), hi.clamp_min(0), gamma


def quantile_lerp(a: torch.Tensor, b: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """numpy's _lerp: a + (b - a) g below g = 0.5, b - (b - a)(1 - g) from there (float64)."""
    d = b - a
    return torch.where(gamma >= 0.5, b - d * (1.0 - gamma), a + d * gamma)


def column_quantiles_reference(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """float64 reference: x [rows, cols], q [nq] -> [nq, cols] float64.

    A full float64 sort along the rows (NaN sorts last) and numpy's interpolation. Not
    torch.nanquantile: it refuses inputs over 16M elements and interpolates next to +-inf
    differently from numpy (torch.nanquantile([1, 2, inf], 0.5) is 2, numpy's is NaN).
    """
    xd = x.detach().to(torch.float64)
    qd = q.detach().to(device=xd.device, dtype=torch.float64).reshape(-1)
    rows, cols = xd.shape
    out = torch.full((qd.numel(), cols), float("nan"), dtype=torch.float64, device=xd.device)
    if rows == 0 or cols == 0 or qd.numel() == 0:
        return out
    xs = torch.sort(xd, dim=0).values
    n = (~torch.isnan(xd)).sum(0)
    lo, hi, gamma = quantile_index(n, qd)
    res = quantile_lerp(xs.gather(0, lo), xs.gather(0, hi), gamma)
    return torch.where((n > 0)[None, :], res, out)


@kernel_op("kernelflow::column_quantiles", triton="kernelflow.triton.quantile")
def _column_quantiles_op(x: torch.Tensor, q: torch.Tensor, backend: str) -> torch.Tensor:
    """x [rows, cols] float32/float64, q [nq] float64 in [0, 1] -> [nq, cols] float64."""


_column_quantiles_op.kernel("torch")(lambda k, x, q: column_quantiles_reference(x, q))


@_column_quantiles_op.kernel("triton")
def _(k, x, q):
    return k.triton.column_quantiles(x, q)


def _out_q(x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out [nq, cols] float64, q [nq] contiguous float64) on x's device."""
    out = torch.empty((q.shape[0], x.shape[1]), dtype=torch.float64, device=x.device)
    return out, q.to(dtype=torch.float64, device=x.device).contiguous()


@_column_quantiles_op.kernel("cpu")
def _(k, x, q):
    out, qd = _out_q(x, q)
    if out.numel():
        k.C.column_quantiles_cpu(mat(x), qd.data_ptr(), qd.numel(), out.data_ptr())
    return out


@_column_quantiles_op.kernel("cuda")
def _(k, x, q):
    out, qd = _out_q(x, q)
    if out.numel():
        nbytes = k.C.column_quantiles_cuda_workspace(x.shape[0], x.shape[1], qd.numel())
        ws = torch.empty(max(nbytes, 1), dtype=torch.uint8, device=x.device)  # [nbytes] selection scratch
        k.C.column_quantiles_cuda(mat(x), qd.data_ptr(), qd.numel(), out.data_ptr(), ws.data_ptr(), nbytes, k.stream)
    return out


@_column_quantiles_op.register_fake
def _(x: torch.Tensor, q: torch.Tensor, backend: str) -> torch.Tensor:
    return x.new_empty((q.shape[0], x.shape[1]), dtype=torch.float64)


def _as_q(q, device: torch.device) -> torch.Tensor:
    if isinstance(q, torch.Tensor):
        qt = q.detach()
    elif isinstance(q, (float, int, np.floating, np.integer)) and not isinstance(q, bool):
        qt = torch.tensor([float(q)], dtype=torch.float64)
    elif isinstance(q, (np.ndarray, list, tuple)):
        try:
            qt = torch.as_tensor(np.asarray(q, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(f"q must be a sequence of floats, got {q!r}") from None
    else:
        raise TypeError(f"q must be a float, a 1-D sequence, ndarray or tensor of floats, got {type(q).__name__}")
    if qt.is_complex() or qt.dtype == torch.bool:
        raise TypeError(f"q must hold real numbers, got dtype {qt.dtype}")
    if qt.dim() != 1:
        raise ValueError(f"q must be 1-D, got shape {tuple(qt.shape)}")
    qt = qt.to(dtype=torch.float64)
    qc = qt.cpu()
    if bool(torch.isnan(qc).any()) or bool((qc < 0).any()) or bool((qc > 1).any()):
        raise ValueError(f"q values must lie in [0, 1], got {qc.tolist()}")
    return qt.to(device)


def column_quantiles(x: torch.Tensor, q: float | Sequence[float] | np.ndarray | torch.Tensor,
                     backend: str | None = None) -> torch.Tensor:
    """Exact quantiles of every column of x [rows, cols] (float32/float64, any strides).

    NaN is ignored (a column with no other value gives NaN), +-inf count as values, and the
    interpolation is numpy.nanquantile(x, q, axis=0, method="linear") computed in float64.
    ``q``: probabilities in [0, 1] (a float or a 1-D sequence / array / tensor). Returns
    [len(q), cols] float64 on x's device. For percentiles, pass ``p / 100``.
    """
    check_float_matrix(x)
    qt = _as_q(q, x.device)
    return _column_quantiles_op(x, qt, _column_quantiles_op.resolve(backend, x.device))
