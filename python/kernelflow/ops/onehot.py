"""One-hot and ordinal encoding of int32 category codes (see ``kernelflow.ops.categories`` for the
code convention: >= 0 category index, -1 missing, <= -2 or >= n_categories unknown).

The layouts (:class:`OneHotLayout`, :class:`OrdinalLayout`, in ``kernelflow.ops.layouts``)
compile every per-column decision into a slot table; the ops here read it in one pass. One-hot
writes the dense output [N, W] (float32 / float64 / float16 / bfloat16; the CUDA and Triton
kernels store every element exactly once, the C++ kernel zeroes a row and sets its ones while the
row is in L1), which may be a column slice of a wider matrix (any row stride, unit column
stride); ordinal writes [N, F] floats or int64 (embedding indices). Values the layout marks as
errors are counted per column by the kernel and raised afterwards as ValueError naming the column.

Typical use (what an encoder's fit / transform does)::

    fits = [encode_strings(X[:, j]) for j in range(F)]                    # host strings -> codes
    layout = OneHotLayout.from_categories([f.categories for f in fits], [f.counts for f in fits],
                                          [f.n_missing for f in fits], handle_unknown="ignore",
                                          min_frequency=5, drop="if_binary")
    codes = torch.from_numpy(np.stack([encode_strings(Xt[:, j], fits[j].categories).codes
                                       for j in range(F)], 1)).to(device)
    Y = one_hot(codes, layout)             # [N, layout.width]; names: layout.feature_names

Integer columns stay on the device: ``integer_categories`` at fit, ``map_codes`` at transform.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from kernelflow._array import check_out, mat, overlaps
from kernelflow._dtypes import FLOATS, as_dtype
from kernelflow.ops._registry import kernel_op
from kernelflow.ops.layouts import ERR_MISSING, ERR_UNKNOWN, ERROR, ZEROS, OneHotLayout, OrdinalLayout

__all__ = ["ERR_MISSING", "ERR_UNKNOWN", "ERROR", "ZEROS", "OneHotLayout", "OrdinalLayout", "one_hot",
           "one_hot_reference", "ordinal_encode", "ordinal_encode_reference"]

_ONEHOT_OUT = FLOATS
_ORDINAL_OUT = _ONEHOT_OUT + (torch.int64,)


# ----------------------------------------------------------------------------------------------
# references


def _slots(codes: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """codes [N, F] -> slot index [N, F] int64 (see ``kernelflow.ops.layouts``)."""
    c = codes.to(torch.int64)
    K = K.to(torch.int64).unsqueeze(0)
    return torch.where((c >= 0) & (c < K), c, torch.where(c == -1, K, K + 1))


def one_hot_reference(codes: torch.Tensor, feat: torch.Tensor, table: torch.Tensor, out_dtype: torch.dtype,
                      width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch one-hot: (out [N, width] of out_dtype, errors int32 [F] = raising values per column)."""
    N, F = codes.shape
    off, wid, toff, K = (feat[i].to(torch.int64) for i in range(4))
    o = table.to(torch.int64)[toff.unsqueeze(0) + _slots(codes, K)] if F else codes.new_zeros((N, 0), dtype=torch.int64)
    errors = (o == ERROR).sum(0).to(torch.int32)
    out = torch.zeros((N, width), dtype=torch.float64, device=codes.device)
    hit = o >= 0
    rows = torch.arange(N, device=codes.device).unsqueeze(1).expand(N, F)
    out[rows[hit], (off.unsqueeze(0) + o)[hit]] = 1.0
    return out.to(out_dtype), errors


def ordinal_encode_reference(codes: torch.Tensor, feat: torch.Tensor, table: torch.Tensor,
                             out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch ordinal encoding: (out [N, F] of out_dtype, errors int32 [F])."""
    N, F = codes.shape
    toff, K, ebits = (feat[i].to(torch.int64) for i in range(3))
    s = _slots(codes, K)
    v = table.to(torch.float64)[toff.unsqueeze(0) + s] if F else torch.zeros((N, 0), dtype=torch.float64, device=codes.device)
    err = ((s == K.unsqueeze(0)) & ((ebits & ERR_MISSING) != 0).unsqueeze(0)) | \
          ((s == K.unsqueeze(0) + 1) & ((ebits & ERR_UNKNOWN) != 0).unsqueeze(0))
    errors = err.sum(0).to(torch.int32)
    v = torch.where(err, torch.zeros_like(v), v)  # raising values are written as 0 (the call raises anyway)
    return v.to(out_dtype), errors


# ----------------------------------------------------------------------------------------------
# custom ops


@kernel_op("kernelflow::one_hot", mutates_args=("out",), triton="kernelflow.triton.onehot")
def _one_hot_op(codes: torch.Tensor, feat: torch.Tensor, table: torch.Tensor, slots: torch.Tensor,
                out: torch.Tensor, backend: str) -> torch.Tensor:
    """codes [N, F] int32, feat int64 [4, F], table int32 [T], slots int32 [2, S] (OneHotLayout.tensors):
    writes out [N, W] (a view; unit column stride) and returns errors int32 [F]."""


@_one_hot_op.kernel("torch")
def _(k, codes, feat, table, slots, out):
    res, errors = one_hot_reference(codes, feat, table, out.dtype, out.shape[1])
    out.copy_(res)
    return errors


def _errors(codes: torch.Tensor) -> torch.Tensor:
    return torch.zeros(codes.shape[1], dtype=torch.int32, device=codes.device)  # [F] raising values per column


@_one_hot_op.kernel("triton")
def _(k, codes, feat, table, slots, out):
    errors = _errors(codes)
    k.triton.one_hot(codes, feat, table, slots, out, errors)
    return errors


@_one_hot_op.kernel("cpu", "cuda")
def _(k, codes, feat, table, slots, out):
    errors = _errors(codes)
    feat_c, table_c, slots_c = feat.contiguous(), table.contiguous(), slots.contiguous()
    k.call("one_hot", mat(codes), feat_c.data_ptr(), table_c.data_ptr(), table_c.numel(), slots_c.data_ptr(),
           slots_c.shape[1], mat(out), errors.data_ptr())
    return errors


@_one_hot_op.register_fake
def _(codes, feat, table, slots, out, backend):
    return codes.new_empty((codes.shape[1],), dtype=torch.int32)


@kernel_op("kernelflow::ordinal_encode", mutates_args=("out",), triton="kernelflow.triton.onehot")
def _ordinal_op(codes: torch.Tensor, feat: torch.Tensor, table: torch.Tensor, out: torch.Tensor,
                backend: str) -> torch.Tensor:
    """codes [N, F] int32, feat int64 [3, F], table float64 [T] (OrdinalLayout.tensors): writes out [N, F]
    (a view; unit column stride) and returns errors int32 [F]."""


@_ordinal_op.kernel("torch")
def _(k, codes, feat, table, out):
    res, errors = ordinal_encode_reference(codes, feat, table, out.dtype)
    out.copy_(res)
    return errors


@_ordinal_op.kernel("triton")
def _(k, codes, feat, table, out):
    errors = _errors(codes)
    k.triton.ordinal_encode(codes, feat, table, out, errors)
    return errors


@_ordinal_op.kernel("cpu", "cuda")
def _(k, codes, feat, table, out):
    errors = _errors(codes)
    feat_c, table_c = feat.contiguous(), table.to(torch.float64).contiguous()
    k.call("ordinal_encode", mat(codes), feat_c.data_ptr(), table_c.data_ptr(), table_c.numel(), mat(out),
           errors.data_ptr())
    return errors


@_ordinal_op.register_fake
def _(codes, feat, table, out, backend):
    return codes.new_empty((codes.shape[1],), dtype=torch.int32)


# ----------------------------------------------------------------------------------------------
# public wrappers


def _check_codes(codes: Any, F: int) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dim() == 1:
        codes = codes.unsqueeze(1)
    if codes.dim() != 2:
        raise ValueError(f"codes must be 2-D [N, F], got shape {tuple(codes.shape)}")
    if codes.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64):
        raise TypeError(f"codes must have a signed integer dtype (int32 preferred), got {codes.dtype}")
    if codes.dtype != torch.int32:
        codes = codes.clamp(-2, 2**31 - 1).to(torch.int32)  # beyond int32 is unknown either way
    if codes.shape[1] != F:
        raise ValueError(f"codes has {codes.shape[1]} columns but the layout describes {F}")
    return codes


def _check_out(out, shape, dtypes, device, codes, arg="out"):
    # one contract for every caller-provided output (kernelflow._array.check_out): no stride-0 or
    # overlapping rows, unit column stride, and no overlap with the codes being read
    check_out(out, shape, device, dtypes, arg)
    if overlaps(out, codes):
        raise ValueError(f"{arg} overlaps codes: the kernel would read what it has written")


def _raise_errors(errors: torch.Tensor, what: str, names: Sequence[str] | None = None) -> None:
    if errors.numel() == 0:
        return
    e = errors.cpu()
    bad = torch.nonzero(e).flatten().tolist()
    if bad:
        j = bad[0]
        col = f"column {j}" if names is None else f"column {j} ({names[j]!r})"
        raise ValueError(f"Found {int(e[j])} {what} in {col} during transform"
                         + (f" (also in columns {bad[1:]})" if len(bad) > 1 else ""))


def _checked(codes, layout, kind, out_dtype, out, dtypes) -> tuple[torch.Tensor, torch.Tensor]:
    """The checks both encoders share: (codes [N, F] int32, out [N, W]: the caller's, checked, or new), where
    W is the one-hot width or, for ordinal, F."""
    if not isinstance(layout, kind):
        article = "an" if kind.__name__[0] in "AEIOU" else "a"
        raise TypeError(f"layout must be {article} {kind.__name__}, got {type(layout).__name__}")
    codes = _check_codes(codes, layout.n_features)
    shape = (codes.shape[0], layout.width if kind is OneHotLayout else layout.n_features)
    if out is None:
        return codes, torch.empty(shape, dtype=as_dtype(out_dtype, dtypes, "out_dtype"), device=codes.device)
    _check_out(out, shape, dtypes, codes.device, codes)
    return codes, out


def one_hot(codes: torch.Tensor, layout: OneHotLayout, out_dtype="float32", out: torch.Tensor | None = None,
            backend: str | None = None, feature_names_in: Sequence[str] | None = None) -> torch.Tensor:
    """Dense one-hot encoding of codes [N, F] (int32 preferred, any strides, any device) into
    [N, layout.width], every element written once. ``out``: an existing [N, width] tensor of a
    float dtype (e.g. a column slice of a wider matrix) to write into; otherwise a new tensor of
    ``out_dtype``. Raises ValueError naming the first column with a value whose table entry is
    ERROR (an unknown category under handle_unknown="error")."""
    codes, out = _checked(codes, layout, OneHotLayout, out_dtype, out, _ONEHOT_OUT)
    feat, table, slots = layout.tensors(codes.device)
    errors = _one_hot_op(codes, feat, table, slots, out, _one_hot_op.resolve(backend, codes.device))
    if layout.can_raise:  # reading the counters waits for the device
        _raise_errors(errors, "unknown categories", feature_names_in)
    return out


def ordinal_encode(codes: torch.Tensor, layout: OrdinalLayout, out_dtype="float64", out: torch.Tensor | None = None,
                   backend: str | None = None, feature_names_in: Sequence[str] | None = None) -> torch.Tensor:
    """Ordinal encoding of codes [N, F] into [N, F] values from ``layout`` (float32 / float64 /
    float16 / bfloat16, or int64 for embedding indices, which needs finite integral table values).
    ``out``: an existing [N, F] tensor to write into. Raises ValueError naming the first column with
    a missing / unknown value that the layout marks as an error."""
    codes, out = _checked(codes, layout, OrdinalLayout, out_dtype, out, _ORDINAL_OUT)
    if out.dtype == torch.int64:
        t = np.asarray(layout.table)
        if not (np.isfinite(t).all() and (t == np.round(t)).all()):
            raise ValueError("int64 output needs finite integral values for every category, missing and unknown value")
    feat, table = layout.tensors(codes.device)
    errors = _ordinal_op(codes, feat, table, out, _ordinal_op.resolve(backend, codes.device))
    if layout.can_raise:  # reading the counters waits for the device
        _raise_errors(errors, "unknown categories or missing values", feature_names_in)
    return out
