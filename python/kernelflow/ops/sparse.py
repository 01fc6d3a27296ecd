"""Sparse column statistics, transform and quantiles: CSR / CSC matrices (scipy.sparse or torch
sparse_csr / sparse_csc) processed over their stored values, the implicit zeros counted without
being materialised.

- ``sparse_column_stats``: [6, cols] float64 in ``column_stats``' layout (weight of the finite
  values, NaN weight, mean, M2, min, max), optional sample weights, one pass, float64
  accumulation; mergeable with ``merge_stats`` exactly like the dense statistics.
- ``sparse_column_apply``: stored values v of column j -> clip(fill[j] if NaN else v, lo[j], hi[j]) * scale[j]
  (the sparsity-preserving part of the fused transform: no shift).
- ``sparse_column_quantiles``: np.nanpercentile of each densified column, without densifying.

CPU tensors run the C++ kernels (``csrc/cpu/sparse.cpp``); CUDA tensors (torch sparse) run the
torch implementation, which is also the float64 reference.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from kernelflow._dtypes import CODES as DTYPE_CODES
from kernelflow.ops._registry import kernel_op

# -- inputs ------------------------------------------------------------------------------


class Compressed:
    """A CSR / CSC matrix as torch tensors: indptr [major + 1], indices [nnz] (same int dtype),
    data [nnz] float32 / float64; shape (rows, cols); csr True for CSR."""

    __slots__ = ("indptr", "indices", "data", "shape", "csr")

    def __init__(self, indptr: torch.Tensor, indices: torch.Tensor, data: torch.Tensor, shape, csr: bool):
        if indptr.dtype != indices.dtype or indptr.dtype not in (torch.int32, torch.int64):
            indptr, indices = indptr.to(torch.int64), indices.to(torch.int64)
        if data.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"sparse data must be float32 or float64, got {data.dtype}")
        rows, cols = (int(shape[0]), int(shape[1]))
        major = rows if csr else cols
        if indptr.dim() != 1 or indptr.numel() != major + 1:
            raise ValueError(f"indptr must have {major + 1} entries for shape {(rows, cols)}, got {tuple(indptr.shape)}")
        if indices.dim() != 1 or data.dim() != 1 or indices.numel() != data.numel():
            raise ValueError("indices and data must be 1-D with one entry per stored value")
        self.indptr = indptr.contiguous()
        self.indices = indices.contiguous()
        self.data = data.contiguous()
        self.shape = (rows, cols)
        self.csr = bool(csr)

    @property
    def nnz(self) -> int:
        return int(self.data.numel())

    @property
    def device(self) -> torch.device:
        return self.data.device


def is_sparse(X: Any) -> bool:
    """scipy.sparse matrix / array, or a torch sparse (COO / CSR / CSC) tensor."""
    if isinstance(X, torch.Tensor):
        return X.layout in (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc)
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover
        return False
    return sp.issparse(X)


def as_compressed(X: Any, fmt: str | None = None) -> Compressed:
    """View X (scipy CSR / CSC, or torch sparse_csr / sparse_csc) as ``Compressed`` without
    copying; fmt "csr" / "csc" converts when X has the other layout (COO becomes fmt or CSR)."""
    if isinstance(X, torch.Tensor):
        if X.layout == torch.sparse_coo or (fmt == "csr" and X.layout == torch.sparse_csc):
            X = X.to_sparse_csr()
        elif fmt == "csc" and X.layout == torch.sparse_csr:
            X = X.to_sparse_csc()
        if X.layout == torch.sparse_csr:
            return Compressed(X.crow_indices(), X.col_indices(), X.values(), X.shape, True)
        if X.layout == torch.sparse_csc:
            return Compressed(X.ccol_indices(), X.row_indices(), X.values(), X.shape, False)
        raise TypeError(f"expected a sparse torch tensor, got layout {X.layout}")
    import scipy.sparse as sp

    if not sp.issparse(X):
        raise TypeError(f"expected a scipy.sparse matrix, got {type(X).__name__}")
    want = fmt or (X.format if X.format in ("csr", "csc") else "csr")
    if X.format != want:
        X = X.asformat(want)
    return Compressed(torch.from_numpy(X.indptr), torch.from_numpy(X.indices), torch.from_numpy(X.data),
                      X.shape, want == "csr")


def _desc(x: Compressed) -> tuple:
    return (x.indptr.data_ptr(), x.indices.data_ptr(), x.data.data_ptr(), DTYPE_CODES[x.indices.dtype],
            DTYPE_CODES[x.data.dtype], x.shape[0], x.shape[1], x.nnz, x.csr)


def _major_ids(x: Compressed) -> torch.Tensor:
    """[nnz] int64: the row (CSR) or column (CSC) of every stored value."""
    major = x.indptr.numel() - 1
    counts = (x.indptr[1:] - x.indptr[:-1]).to(torch.int64)
    return torch.repeat_interleave(torch.arange(major, device=x.device), counts)


def _rows_cols(x: Compressed) -> tuple[torch.Tensor, torch.Tensor]:
    m = _major_ids(x)
    i = x.indices.to(torch.int64)
    return (m, i) if x.csr else (i, m)


# -- column statistics ---------------------------------------------------------------------


def sparse_column_stats_reference(x: Compressed, weights: torch.Tensor | None = None) -> torch.Tensor:
    """float64 reference: the statistics of the densified matrix, computed from the stored values."""
    rows, cols = x.shape
    dev = x.device
    r, c = _rows_cols(x)
    v = x.data.to(torch.float64)
    w = torch.ones(rows, dtype=torch.float64, device=dev) if weights is None else weights.to(dev, torch.float64)
    we = w[r]
    fin = torch.isfinite(v) & (we != 0)
    z = torch.zeros(cols, dtype=torch.float64, device=dev)
    w_fin = z.index_add(0, c, torch.where(fin, we, 0.0))
    w_nan = z.index_add(0, c, torch.where(torch.isnan(v), we, 0.0))
    w_stored = z.index_add(0, c, we)
    n_stored = torch.zeros(cols, dtype=torch.int64, device=dev).index_add(0, c, torch.ones_like(c))
    wz = torch.where(n_stored < rows, w.sum() - w_stored, 0.0)  # weight of the implicit zeros
    W = w_fin + wz
    s = z.index_add(0, c, torch.where(fin, we * v, 0.0))
    mean = torch.where(W != 0, s / torch.where(W != 0, W, 1.0), 0.0)
    d = torch.where(fin, v - mean[c], 0.0)
    m2 = z.index_add(0, c, we * d * d) + wz * mean * mean
    inf = torch.full((cols,), float("inf"), dtype=torch.float64, device=dev)
    mn = inf.scatter_reduce(0, c, torch.where(fin, v, float("inf")), "amin")
    mx = (-inf).scatter_reduce(0, c, torch.where(fin, v, float("-inf")), "amax")
    has_zero = wz != 0
    mn = torch.where(has_zero, torch.minimum(mn, torch.zeros_like(mn)), mn)
    mx = torch.where(has_zero, torch.maximum(mx, torch.zeros_like(mx)), mx)
    return torch.stack([W, w_nan, mean, m2, mn, mx])


# The sparse ops run the C++ kernels on CPU data and their torch implementation (also the float64
# reference) elsewhere, CUDA tensors included: they register "torch" and "cpu" only.
@kernel_op("kernelflow::sparse_column_stats")
def _stats_op(indptr: torch.Tensor, indices: torch.Tensor, data: torch.Tensor, weights: Optional[torch.Tensor],
              rows: int, cols: int, csr: bool, backend: str) -> torch.Tensor:
    """indptr [major + 1], indices [nnz], data [nnz] float32/float64, weights [rows] float64 or None
    -> [6, cols] float64 (float64 accumulation)."""


@_stats_op.kernel("torch")
def _(k, indptr, indices, data, weights, rows, cols, csr):
    return sparse_column_stats_reference(Compressed(indptr, indices, data, (rows, cols), csr), weights)


@_stats_op.kernel("cpu")
def _(k, indptr, indices, data, weights, rows, cols, csr):
    x = Compressed(indptr, indices, data, (rows, cols), csr)
    out = torch.empty((6, cols), dtype=torch.float64)
    w = None if weights is None else weights.to(torch.float64).contiguous()
    k.C.sparse_column_stats_cpu(_desc(x), 0 if w is None else w.data_ptr(), out.data_ptr())
    return out


@_stats_op.register_fake
def _(indptr, indices, data, weights, rows, cols, csr, backend):
    return data.new_empty((6, cols), dtype=torch.float64)


def _check_weights(weights: Any, rows: int, device: torch.device) -> torch.Tensor | None:
    if weights is None:
        return None
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64) if not isinstance(weights, torch.Tensor) else weights)
    if w.dim() != 1 or w.numel() != rows:
        raise ValueError(f"sample_weight must have shape ({rows},), got {tuple(w.shape)}")
    return w.detach().to(device=device, dtype=torch.float64).contiguous()


def sparse_column_stats(X: Any, sample_weight: Any = None, backend: str | None = None) -> torch.Tensor:
    """[6, cols] float64 statistics (``STAT_ROWS``: weight of the finite values, NaN weight,
    mean, M2, min, max) of the sparse matrix X [rows, cols] with its implicit zeros, in one
    pass over the stored values. sample_weight: [rows] or None (count = weight 1 per row)."""
    x = X if isinstance(X, Compressed) else as_compressed(X)
    w = _check_weights(sample_weight, x.shape[0], x.device)
    return _stats_op(x.indptr, x.indices, x.data, w, x.shape[0], x.shape[1], x.csr, _stats_op.resolve(backend, x.device))


# -- column transform ----------------------------------------------------------------------

APPLY_ROWS = ("fill", "lo", "hi", "scale")


def sparse_apply_params(cols: int, fill=np.nan, lo=-np.inf, hi=np.inf, scale=1.0) -> np.ndarray:
    """The [4, cols] float64 parameter block of ``sparse_column_apply``, broadcasting scalars."""
    p = np.empty((4, cols), dtype=np.float64)
    for i, v in enumerate((fill, lo, hi, scale)):
        v = np.asarray(v, dtype=np.float64)
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != cols):
            raise ValueError(f"{APPLY_ROWS[i]} must be a scalar or have {cols} entries, got shape {v.shape}")
        p[i] = v
    return p


def sparse_column_apply_reference(x: Compressed, params: torch.Tensor) -> torch.Tensor:
    """float64 reference, cast to data's dtype: [nnz] transformed stored values."""
    _, c = _rows_cols(x)
    p = params.to(device=x.device, dtype=torch.float64)
    fill, lo, hi, scale = p[0][c], p[1][c], p[2][c], p[3][c]
    v = x.data.to(torch.float64)
    v = torch.where(torch.isnan(v), fill, v)
    v = torch.where(v < lo, lo, torch.where(v > hi, hi, v))
    return (v * scale).to(x.data.dtype)


@kernel_op("kernelflow::sparse_column_apply_out", mutates_args=("out",))
def _apply_op(indptr: torch.Tensor, indices: torch.Tensor, data: torch.Tensor, params: torch.Tensor,
              out: torch.Tensor, rows: int, cols: int, csr: bool, backend: str) -> None:
    """Compressed (indptr, indices, data [nnz]), params [4, cols] float64 -> writes out [nnz] (data's dtype)."""


@_apply_op.kernel("torch")
def _(k, indptr, indices, data, params, out, rows, cols, csr):
    out.copy_(sparse_column_apply_reference(Compressed(indptr, indices, data, (rows, cols), csr), params))


@_apply_op.kernel("cpu")
def _(k, indptr, indices, data, params, out, rows, cols, csr):
    x = Compressed(indptr, indices, data, (rows, cols), csr)
    k.C.sparse_column_apply_cpu(_desc(x), params.to(torch.float64).contiguous().data_ptr(), out.data_ptr())


@_apply_op.register_fake
def _(indptr, indices, data, params, out, rows, cols, csr, backend):
    return None


def sparse_column_apply(X: Any, params: Any, out: torch.Tensor | None = None, backend: str | None = None) -> torch.Tensor:
    """Transformed stored values [nnz] of X (``sparse_apply_params``' [4, cols] block: fill NaN,
    clip, scale); the structure (indptr, indices) is unchanged, implicit zeros stay zero.
    out: [nnz] tensor of data's dtype to write into (may be X's own data: in place)."""
    x = X if isinstance(X, Compressed) else as_compressed(X)
    p = torch.as_tensor(params, dtype=torch.float64, device=x.device)
    if p.shape != (4, x.shape[1]):
        raise ValueError(f"params must have shape (4, {x.shape[1]}), got {tuple(p.shape)}")
    if out is None:
        out = torch.empty_like(x.data)
    elif out.shape != x.data.shape or out.dtype != x.data.dtype or out.device != x.device or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {x.data.dtype} tensor of shape {tuple(x.data.shape)} on {x.device}")
    _apply_op(x.indptr, x.indices, x.data, p, out, x.shape[0], x.shape[1], x.csr, _apply_op.resolve(backend, x.device))
    return out


# -- column quantiles ----------------------------------------------------------------------


def sparse_column_quantiles_reference(x: Compressed, q) -> torch.Tensor:
    """float64 reference: numpy.nanquantile ("linear") of each densified column."""
    r, c = _rows_cols(x)
    dense = torch.zeros(x.shape, dtype=torch.float64)
    dense[r.cpu(), c.cpu()] = x.data.detach().cpu().to(torch.float64)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        res = np.nanquantile(dense.numpy(), np.asarray(q, dtype=np.float64), axis=0) if x.shape[0] else \
            np.full((len(q), x.shape[1]), np.nan)
    return torch.from_numpy(np.asarray(res, dtype=np.float64).reshape(len(q), x.shape[1])).to(x.device)


@kernel_op("kernelflow::sparse_column_quantiles")
def _quantiles_op(indptr: torch.Tensor, indices: torch.Tensor, data: torch.Tensor, q: torch.Tensor,
                  rows: int, cols: int, backend: str) -> torch.Tensor:
    """CSC (indptr [cols + 1], indices [nnz], data [nnz]), q [nq] float64 -> [nq, cols] float64."""


@_quantiles_op.kernel("torch")
def _(k, indptr, indices, data, q, rows, cols):
    return sparse_column_quantiles_reference(Compressed(indptr, indices, data, (rows, cols), False), q.tolist())


@_quantiles_op.kernel("cpu")
def _(k, indptr, indices, data, q, rows, cols):
    x = Compressed(indptr, indices, data, (rows, cols), False)
    qq = q.to(torch.float64).contiguous()
    out = torch.empty((qq.numel(), cols), dtype=torch.float64)
    k.C.sparse_column_quantiles_cpu(_desc(x), qq.data_ptr(), qq.numel(), out.data_ptr())
    return out


@_quantiles_op.register_fake
def _(indptr, indices, data, q, rows, cols, backend):
    return data.new_empty((q.numel(), cols), dtype=torch.float64)


def sparse_column_quantiles(X: Any, q, backend: str | None = None) -> torch.Tensor:
    """[len(q), cols] float64 NaN-aware quantiles (q in [0, 1], numpy's "linear" rule) of each
    column of X with its implicit zeros; NaN for a column with no value. CSR input is converted
    to CSC (scipy / torch) first."""
    qs = np.asarray(q, dtype=np.float64).reshape(-1)
    if np.any(~(qs >= 0) | ~(qs <= 1)):
        raise ValueError(f"q must lie in [0, 1], got {qs.tolist()}")
    x = as_compressed(X, "csc") if not isinstance(X, Compressed) else X
    if x.csr:
        raise ValueError("sparse_column_quantiles needs CSC input (pass the scipy / torch matrix itself)")
    return _quantiles_op(x.indptr, x.indices, x.data, torch.from_numpy(qs), x.shape[0], x.shape[1],
                         _quantiles_op.resolve(backend, x.device))
