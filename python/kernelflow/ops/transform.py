"""Fused numeric transform: impute NaN, clip, scale, in one pass writing float32 / float64 /
float16 / bfloat16. Per column j, with params [6, cols] = (fill, lo, hi, shift, inv_scale, offset):

    v = fill[j] if isnan(x) else x;  v = clip(v, lo[j], hi[j]) (NaN kept);  y = (v - shift[j]) * inv_scale[j] + offset[j]

A NaN fill leaves NaN in place; +-inf bounds disable clipping. Standard, min-max and max-abs
scaling, mean/constant imputation and their inverses are all choices of these parameters.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from kernelflow import _backend
from kernelflow._array import check_float_matrix, mat, out_dtype as _out_dtype
from kernelflow.ops._registry import kernel_op

PARAM_ROWS = ("fill", "lo", "hi", "shift", "inv_scale", "offset")


def transform_params(cols: int, fill=np.nan, lo=-np.inf, hi=np.inf, shift=0.0, inv_scale=1.0, offset=0.0) -> np.ndarray:
    """Build the [6, cols] float64 parameter block, broadcasting scalars."""
    p = np.empty((6, cols), dtype=np.float64)
    for i, v in enumerate((fill, lo, hi, shift, inv_scale, offset)):
        v = np.asarray(v, dtype=np.float64)
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != cols):
            raise ValueError(f"{PARAM_ROWS[i]} must be a scalar or have {cols} entries, got shape {v.shape}")
        p[i] = v
    if np.any(p[1] > p[2]):
        raise ValueError(f"lo must not exceed hi (columns {np.flatnonzero(p[1] > p[2])[:10].tolist()})")
    return p


def numeric_transform_reference(x: torch.Tensor, params: torch.Tensor, out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """float64 reference of the fused transform, cast to out_dtype at the end."""
    xd = x.detach().to(torch.float64)
    p = params.to(device=xd.device, dtype=torch.float64)
    fill, lo, hi, shift, inv, off = p.unbind(0)
    v = torch.where(torch.isnan(xd), fill, xd)
    v = torch.where(v < lo, lo, torch.where(v > hi, hi, v))
    return ((v - shift) * inv + off).to(out_dtype)


@kernel_op("kernelflow::numeric_transform", triton="kernelflow.triton.transform")
def _numeric_transform_op(x: torch.Tensor, params: torch.Tensor, out_dtype: torch.dtype, backend: str) -> torch.Tensor:
    """x [rows, cols] float32/float64, params [6, cols] float64 -> new [rows, cols] of out_dtype."""


@kernel_op("kernelflow::numeric_transform_out", mutates_args=("out",), triton="kernelflow.triton.transform")
def _numeric_transform_out_op(x: torch.Tensor, params: torch.Tensor, out: torch.Tensor, backend: str) -> None:
    """Writes the transform of x [rows, cols] into out [rows, cols] (unit column stride) in one launch."""


# One kernel per backend writes into out; the allocating op is the out op on a fresh tensor.
@_numeric_transform_out_op.kernel("torch")
def _(k, x, params, out):
    out.copy_(numeric_transform_reference(x, params, out.dtype))


@_numeric_transform_out_op.kernel("triton")
def _(k, x, params, out):
    k.triton.numeric_transform(x, params, out)


@_numeric_transform_out_op.kernel("cpu", "cuda")
def _(k, x, params, out):
    p = params.to(dtype=torch.float64).contiguous()  # [6, cols] float64
    k.call("numeric_transform", mat(x), p.data_ptr(), mat(out))


@_numeric_transform_op.kernel(*(b for b in _backend.BACKENDS if b != "cpu"))
def _(k, x, params, out_dtype):
    out = torch.empty(x.shape, dtype=out_dtype, device=x.device)
    _numeric_transform_out_op.kernels(x, params, out, k.backend)
    return out


@_numeric_transform_op.kernel("cpu")
def _(k, x, params, out_dtype):
    # fresh=True: the kernel takes the new output's page faults itself (see csrc/cpu/transform.cpp)
    out = torch.empty(x.shape, dtype=out_dtype)
    p = params.to(dtype=torch.float64).contiguous()  # [6, cols] float64
    k.C.numeric_transform_cpu(mat(x), p.data_ptr(), mat(out), fresh=True)
    return out


@_numeric_transform_out_op.register_fake
def _(x, params, out, backend):
    return None


@_numeric_transform_op.register_fake
def _(x, params, out_dtype, backend):
    return x.new_empty(x.shape, dtype=out_dtype)


def _setup_context(ctx, inputs, output):
    x, params, _, _ = inputs
    ctx.save_for_backward(x, params)


def _backward(ctx, grad):
    # d y / d x = inv_scale where x is a real value inside (lo, hi); 0 where imputed or clipped.
    x, params = ctx.saved_tensors
    p = params.to(dtype=grad.dtype)
    lo, hi, inv = p[1], p[2], p[4]
    xv = x.to(grad.dtype)
    live = ~torch.isnan(xv) & (xv >= lo) & (xv <= hi)
    gx = torch.where(live, grad * inv, torch.zeros((), dtype=grad.dtype, device=grad.device))
    return gx.to(x.dtype), None, None, None


_numeric_transform_op.register_autograd(_backward, setup_context=_setup_context)


def _span(t: torch.Tensor) -> tuple[int, int]:
    """[first, last) byte addresses a non-empty tensor can touch."""
    es = t.element_size()
    hi = sum((n - 1) * abs(st) for n, st in zip(t.shape, t.stride()))
    return t.data_ptr(), t.data_ptr() + (hi + 1) * es


def _check_no_alias(x: torch.Tensor, out: torch.Tensor) -> None:
    """Refuse an ``out`` that overlaps ``x`` (the kernels would read values they already wrote),
    except ``out`` being ``x`` itself (same address, strides and dtype): that runs exactly in place,
    since every element is read before it is written by the same thread."""
    if x.numel() == 0 or out.numel() == 0 or x.device != out.device:
        return
    (a0, a1), (b0, b1) = _span(x), _span(out)
    if a1 <= b0 or b1 <= a0:
        return
    if x.data_ptr() == out.data_ptr() and x.stride() == out.stride() and x.dtype == out.dtype:
        return
    # column slices of one row-major matrix (both unit column stride, same row stride): disjoint
    # when their byte ranges within a row do not meet
    es_x, es_o = x.element_size(), out.element_size()
    if x.stride(1) == 1 and out.stride(1) == 1 and x.stride(0) * es_x == out.stride(0) * es_o:
        R = x.stride(0) * es_x
        wx, wo = x.shape[1] * es_x, out.shape[1] * es_o
        d = (out.data_ptr() - x.data_ptr()) % R
        if wx <= R and wo <= R and wx <= d and d + wo <= R:
            return
    raise ValueError("out overlaps x in memory: pass a separate out tensor, or x itself to transform in place")


def numeric_transform(
    x: torch.Tensor,
    params: torch.Tensor | np.ndarray | Sequence,
    out_dtype="float32",
    backend: str | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply the fused transform to x [rows, cols] float32/float64 (any strides).

    params: [6, cols] (fill, lo, hi, shift, inv_scale, offset), see ``transform_params``.
    Returns a new contiguous [rows, cols] tensor of ``out_dtype`` on x's device, or writes into
    ``out`` ([rows, cols] on x's device, unit column stride, any row stride: e.g. a column slice
    of a wider matrix; its dtype wins over out_dtype) and returns it. ``out`` may be x itself
    (in place) but must not otherwise overlap x (ValueError). The ``out`` form does not record
    gradients. Arithmetic is float64 on every backend, rounded once to the output type.
    """
    check_float_matrix(x)
    p = torch.as_tensor(params, dtype=torch.float64, device=x.device)
    if p.shape != (6, x.shape[1]):
        raise ValueError(f"params must have shape (6, {x.shape[1]}), got {tuple(p.shape)}")
    be = _numeric_transform_op.resolve(backend, x.device)
    if out is None:
        return _numeric_transform_op(x, p, _out_dtype(out_dtype, "out_dtype"), be)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape or out.device != x.device:
        raise ValueError(f"out must be a tensor of shape {tuple(x.shape)} on {x.device}")
    _out_dtype(out.dtype, "out.dtype")
    if x.shape[0] and x.shape[1] and (out.stride(1) != 1 or out.stride(0) < x.shape[1]):
        raise ValueError("out must have unit column stride and a row stride >= its number of columns")
    _check_no_alias(x, out)
    _numeric_transform_out_op(x, p, out, be)
    return out
