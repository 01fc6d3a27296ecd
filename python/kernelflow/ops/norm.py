"""Fused LayerNorm and RMSNorm, forward and backward, over the last dimension of x [rows, hidden].

Forward, one pass over each row with fp32 statistics:
    LayerNorm: mean = mean(x), rstd = 1 / sqrt(var(x) + eps), y = (x - mean) * rstd * w + b
    RMSNorm:   rstd = 1 / sqrt(mean(x^2) + eps),            y = x * rstd * w
y has x's dtype; mean / rstd [rows] fp32 are saved for the backward.

Backward, per row with fp32 accumulation (xhat = (x - mean) * rstd, g = w * dy):
    LayerNorm: dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    RMSNorm:   dx = rstd * (g - xhat * mean(g * xhat))
dweight = sum_rows(dy * xhat), dbias = sum_rows(dy): each kernel block writes its partial sums
[blocks, hidden] fp32 and they are summed afterwards, so the result is deterministic (no atomics).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from kernelflow._array import mat
from kernelflow.ops._registry import KernelTable, kernel_op

DTYPES = (torch.float32, torch.bfloat16, torch.float16)


# ----------------------------------------------------------------------------- references

def norm_fwd_reference(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float,
                       rms: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 reference of the forward: (y in x's dtype, mean [rows] fp32 (zeros for RMSNorm), rstd [rows] fp32)."""
    xd = x.detach().to(torch.float64)
    if rms:
        mean = torch.zeros(xd.shape[0], dtype=torch.float64, device=x.device)
        rstd = torch.rsqrt(xd.square().mean(1) + eps)
    else:
        mean = xd.mean(1)
        rstd = torch.rsqrt((xd - mean[:, None]).square().mean(1) + eps)
    y = (xd - mean[:, None]) * rstd[:, None]
    if weight is not None:
        y = y * weight.detach().to(torch.float64)
    if bias is not None:
        y = y + bias.detach().to(torch.float64)
    return y.to(x.dtype), mean.float(), rstd.float()


def norm_bwd_reference(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None, mean: torch.Tensor,
                       rstd: torch.Tensor, rms: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 reference of the backward from the saved statistics: (dx in x's dtype, dweight fp32, dbias fp32)."""
    dyd, xd = dy.to(torch.float64), x.detach().to(torch.float64)
    m, r = mean.to(torch.float64)[:, None], rstd.to(torch.float64)[:, None]
    xhat = (xd - m) * r
    g = dyd * weight.detach().to(torch.float64) if weight is not None else dyd
    inner = g - xhat * (g * xhat).mean(1, keepdim=True)
    if not rms:
        inner = inner - g.mean(1, keepdim=True)
    dx = (r * inner).to(x.dtype)
    return dx, (dyd * xhat).sum(0).float(), dyd.sum(0).float()


def layer_norm_reference(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.layer_norm in float64, cast back to x's dtype."""
    w = weight.double() if weight is not None else None
    b = bias.double() if bias is not None else None
    return torch.nn.functional.layer_norm(x.double(), tuple(normalized_shape), w, b, eps).to(x.dtype)


def rms_norm_reference(x, normalized_shape, weight=None, eps=None):
    """torch.nn.functional.rms_norm in float64 (eps=None means finfo(x.dtype).eps), cast back to x's dtype."""
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    w = weight.double() if weight is not None else None
    return torch.nn.functional.rms_norm(x.double(), tuple(normalized_shape), w, eps).to(x.dtype)


# ----------------------------------------------------------------------------- dispatch

def _f32(t: torch.Tensor | None) -> torch.Tensor | None:
    # weight / bias cross to the kernels as contiguous fp32 [hidden] (hidden-sized, negligible)
    return None if t is None else t.detach().to(torch.float32).contiguous()


def _ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def _partial_blocks(rows: int, device: torch.device) -> int:
    """Number of row blocks, each writing one [hidden] row of dweight / dbias partial sums.
    Fixed for a device and row count, so the sums are reproducible run to run."""
    if rows == 0:
        return 0
    if device.type == "cuda":
        return min(rows, 4 * torch.cuda.get_device_properties(device).multi_processor_count)
    # the CPU kernel splits the rows among its threads itself (a fixed split, merged in order):
    # one row of partial sums spares the [blocks, hidden] fill and sum, two parallel regions each
    return 1


# Launchers shared by LayerNorm and RMSNorm (rms selects the formula); the ops' "torch" kernels
# are the references, the others run the prologue below and then the launcher.
_norm_fwd = KernelTable("norm_fwd", triton="kernelflow.triton.norm")
_norm_bwd = KernelTable("norm_bwd", triton="kernelflow.triton.norm")


@_norm_fwd.kernel("triton")
def _(k, x, w, b, eps, rms, y, mean, rstd):
    k.triton.norm_fwd(x, w, b, eps, rms, y, mean, rstd)


@_norm_fwd.kernel("cpu", "cuda")
def _(k, x, w, b, eps, rms, y, mean, rstd):
    k.call("norm_fwd", mat(x), _ptr(w), _ptr(b), float(eps), bool(rms), mat(y), mean.data_ptr(), rstd.data_ptr())


# dwp / dbp: [blocks, hidden] fp32 partial sums, or None when no weight gradient is wanted
@_norm_bwd.kernel("triton")
def _(k, dy, x, w, mean, rstd, rms, dx, dwp, dbp):
    k.triton.norm_bwd(dy, x, w, mean, rstd, rms, dx, dwp, dbp)


@_norm_bwd.kernel("cpu", "cuda")
def _(k, dy, x, w, mean, rstd, rms, dx, dwp, dbp):
    blocks = 0 if dwp is None else dwp.shape[0]
    k.call("norm_bwd", mat(dy), mat(x), _ptr(w), mean.data_ptr(), rstd.data_ptr(), bool(rms), mat(dx), _ptr(dwp),
           _ptr(dbp), blocks)


def _fwd(k, x, weight, bias, eps: float, rms: bool):
    """x [rows, hidden] -> (y like x, mean [rows] fp32 (zeros for RMSNorm), rstd [rows] fp32) on k's backend."""
    rows, hidden = x.shape
    y = torch.empty_like(x)
    mean = torch.zeros(rows, dtype=torch.float32, device=x.device)
    rstd = torch.empty(rows, dtype=torch.float32, device=x.device)
    if rows == 0 or hidden == 0:  # statistics of an empty row are NaN, as in the reference
        return y, mean.fill_(math.nan) if hidden == 0 else mean, rstd.fill_(math.nan)
    _norm_fwd(x, _f32(weight), _f32(bias), eps, rms, y, mean, rstd, k.backend)
    return y, mean, rstd


def _empty_grad(x):  # a fresh tensor each: op outputs may not alias one another
    return x.new_empty(0, dtype=torch.float32)


def _bwd_reference(dy, x, weight, mean, rstd, rms: bool, need_wgrad: bool):
    dx, dw, db = norm_bwd_reference(dy, x, weight, mean, rstd, rms)
    return (dx, dw, db) if need_wgrad else (dx, _empty_grad(x), _empty_grad(x))


def _bwd(k, dy, x, weight, mean, rstd, rms: bool, need_wgrad: bool):
    """(dx like x, dweight [hidden] fp32, dbias [hidden] fp32; [0] when not need_wgrad) on k's backend."""
    rows, hidden = x.shape
    dy = dy.contiguous()
    dx = torch.empty_like(x)
    blocks = _partial_blocks(rows, x.device) if need_wgrad else 0
    dwp = torch.zeros(blocks, hidden, dtype=torch.float32, device=x.device)  # [blocks, hidden] partial sums
    dbp = torch.zeros(blocks, hidden, dtype=torch.float32, device=x.device)
    if rows and hidden:
        _norm_bwd(dy, x, _f32(weight), mean, rstd, rms, dx, dwp if blocks else None, dbp if blocks else None,
                  k.backend)
    if not need_wgrad:
        return dx, _empty_grad(x), _empty_grad(x)
    return dx, dwp.sum(0), dbp.sum(0)


# ----------------------------------------------------------------------------- custom ops

_FUSED = ("triton", "cpu", "cuda")


@kernel_op("kernelflow::layer_norm_fwd")
def _layer_norm_fwd(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor], eps: float,
                    backend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x [rows, hidden], weight / bias [hidden] or None -> (y like x, mean [rows] fp32, rstd [rows] fp32)."""


_layer_norm_fwd.kernel("torch")(lambda k, x, weight, bias, eps: norm_fwd_reference(x, weight, bias, eps, False))
_layer_norm_fwd.kernel(*_FUSED)(lambda k, x, weight, bias, eps: _fwd(k, x, weight, bias, eps, False))


@kernel_op("kernelflow::layer_norm_bwd")
def _layer_norm_bwd(dy: torch.Tensor, x: torch.Tensor, weight: Optional[torch.Tensor], mean: torch.Tensor,
                    rstd: torch.Tensor, need_wgrad: bool, backend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dy, x [rows, hidden], mean / rstd [rows] fp32 -> (dx, dweight [hidden] fp32, dbias [hidden] fp32)."""


_layer_norm_bwd.kernel("torch")(lambda k, dy, x, w, mean, rstd, need: _bwd_reference(dy, x, w, mean, rstd, False, need))
_layer_norm_bwd.kernel(*_FUSED)(lambda k, dy, x, w, mean, rstd, need: _bwd(k, dy, x, w, mean, rstd, False, need))


@kernel_op("kernelflow::rms_norm_fwd")
def _rms_norm_fwd(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float,
                  backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x [rows, hidden], weight [hidden] or None -> (y like x, rstd [rows] fp32)."""


@_rms_norm_fwd.kernel("torch")
def _(k, x, weight, eps):
    y, _, rstd = norm_fwd_reference(x, weight, None, eps, True)
    return y, rstd


@_rms_norm_fwd.kernel(*_FUSED)
def _(k, x, weight, eps):
    y, _, rstd = _fwd(k, x, weight, None, eps, True)
    return y, rstd


@kernel_op("kernelflow::rms_norm_bwd")
def _rms_norm_bwd(dy: torch.Tensor, x: torch.Tensor, weight: Optional[torch.Tensor], rstd: torch.Tensor,
                  need_wgrad: bool, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """dy, x [rows, hidden], rstd [rows] fp32 -> (dx, dweight [hidden] fp32)."""


@_rms_norm_bwd.kernel("torch")
def _(k, dy, x, weight, rstd, need_wgrad):
    dx, dw, _ = _bwd_reference(dy, x, weight, torch.zeros_like(rstd), rstd, True, need_wgrad)
    return dx, dw


@_rms_norm_bwd.kernel(*_FUSED)
def _(k, dy, x, weight, rstd, need_wgrad):
    dx, dw, _ = _bwd(k, dy, x, weight, torch.zeros_like(rstd), rstd, True, need_wgrad)
    return dx, dw


def _stats_fake(x):
    return x.new_empty(x.shape[0], dtype=torch.float32)


def _wgrad_fake(x, need_wgrad):
    return x.new_empty(x.shape[1] if need_wgrad else 0, dtype=torch.float32)


@_layer_norm_fwd.register_fake
def _(x, weight, bias, eps, backend):
    return torch.empty_like(x), _stats_fake(x), _stats_fake(x)


@_layer_norm_bwd.register_fake
def _(dy, x, weight, mean, rstd, need_wgrad, backend):
    return torch.empty_like(x), _wgrad_fake(x, need_wgrad), _wgrad_fake(x, need_wgrad)


@_rms_norm_fwd.register_fake
def _(x, weight, eps, backend):
    return torch.empty_like(x), _stats_fake(x)


@_rms_norm_bwd.register_fake
def _(dy, x, weight, rstd, need_wgrad, backend):
    return torch.empty_like(x), _wgrad_fake(x, need_wgrad)


def _ln_setup(ctx, inputs, output):
    x, weight, bias, _, backend = inputs
    _, mean, rstd = output
    ctx.backend, ctx.has_weight, ctx.has_bias = backend, weight is not None, bias is not None
    ctx.w_dtype = weight.dtype if weight is not None else None
    ctx.b_dtype = bias.dtype if bias is not None else None
    ctx.save_for_backward(x, weight, mean, rstd)


def _ln_backward(ctx, gy, _gmean, _grstd):
    x, weight, mean, rstd = ctx.saved_tensors
    need_wgrad = (ctx.has_weight and ctx.needs_input_grad[1]) or (ctx.has_bias and ctx.needs_input_grad[2])
    dx, dw, db = _layer_norm_bwd(gy, x, weight, mean, rstd, need_wgrad, ctx.backend)
    gw = dw.to(ctx.w_dtype) if need_wgrad and ctx.has_weight else None
    gb = db.to(ctx.b_dtype) if need_wgrad and ctx.has_bias else None
    return dx, gw, gb, None, None


def _rms_setup(ctx, inputs, output):
    x, weight, _, backend = inputs
    _, rstd = output
    ctx.backend, ctx.has_weight = backend, weight is not None
    ctx.w_dtype = weight.dtype if weight is not None else None
    ctx.save_for_backward(x, weight, rstd)


def _rms_backward(ctx, gy, _grstd):
    x, weight, rstd = ctx.saved_tensors
    need_wgrad = ctx.has_weight and ctx.needs_input_grad[1]
    dx, dw = _rms_norm_bwd(gy, x, weight, rstd, need_wgrad, ctx.backend)
    return dx, (dw.to(ctx.w_dtype) if need_wgrad else None), None, None


_layer_norm_fwd.register_autograd(_ln_backward, setup_context=_ln_setup)
_rms_norm_fwd.register_autograd(_rms_backward, setup_context=_rms_setup)


# ----------------------------------------------------------------------------- public wrappers

def _shape(normalized_shape) -> tuple[int, ...]:
    if isinstance(normalized_shape, int):
        return (normalized_shape,)
    if isinstance(normalized_shape, torch.Size) or isinstance(normalized_shape, Sequence):
        return tuple(int(s) for s in normalized_shape)
    raise TypeError(f"normalized_shape must be an int or a sequence of ints, got {type(normalized_shape).__name__}")


def _check(x, normalized_shape, params: dict) -> tuple[torch.Size, int, dict]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in DTYPES + (torch.float64,):
        raise TypeError(f"x must be float32, float64, bfloat16 or float16, got {x.dtype}")
    ns = _shape(normalized_shape)
    if len(ns) == 0 or x.dim() < len(ns) or tuple(x.shape[x.dim() - len(ns):]) != ns:
        raise ValueError(f"normalized_shape {ns} must match the trailing dimensions of x {tuple(x.shape)}")
    hidden = math.prod(ns)
    flat = {}
    for name, p in params.items():
        if p is None:
            flat[name] = None
            continue
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or None, got {type(p).__name__}")
        if tuple(p.shape) != ns:
            raise ValueError(f"{name} must have shape {ns}, got {tuple(p.shape)}")
        if p.dtype not in (x.dtype, torch.float32):
            raise TypeError(f"{name} must have x's dtype ({x.dtype}) or float32, got {p.dtype}")
        if p.device != x.device:
            raise ValueError(f"{name} is on {p.device} but x is on {x.device}")
        flat[name] = p.reshape(hidden)
    return x.shape, hidden, flat


def _eps(eps, arg: str) -> float:
    import numbers

    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(float(eps)) or eps < 0:
        raise ValueError(f"{arg} must be a finite non-negative number, got {eps!r}")
    return float(eps)


def _native(x, normalized_shape, weight, bias, eps: float, rms: bool) -> torch.Tensor:
    """float64 inputs and empty rows run torch's own kernels: the fused kernels accumulate in fp32,
    which a float64 model does not want, and a row of 0 values has nothing to fuse. Parameters are
    cast to x's dtype (differentiably)."""
    ns = _shape(normalized_shape)
    w = None if weight is None else weight.to(x.dtype)
    if rms:
        return torch.nn.functional.rms_norm(x, ns, w, eps)
    return torch.nn.functional.layer_norm(x, ns, w, None if bias is None else bias.to(x.dtype), eps)


def layer_norm(x: torch.Tensor, normalized_shape, weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None, eps: float = 1e-5, backend: str | None = None) -> torch.Tensor:
    """Drop-in for torch.nn.functional.layer_norm over the trailing ``normalized_shape`` dims of x
    (float32 / bfloat16 / float16 through the fused kernels; float64, and a normalized size of 0,
    through torch's own); weight and bias of x's dtype or float32. Differentiable in x,
    weight, bias."""
    shape, hidden, p = _check(x, normalized_shape, {"weight": weight, "bias": bias})
    eps = _eps(eps, "eps")
    be = _layer_norm_fwd.resolve(backend, x.device)
    if x.dtype == torch.float64 or hidden == 0:
        return _native(x, normalized_shape, weight, bias, eps, rms=False)
    x2 = x.reshape(-1, hidden).contiguous()  # at most one copy, only for non-contiguous x
    y, _, _ = _layer_norm_fwd(x2, p["weight"], p["bias"], float(eps), be)
    return y.reshape(shape)


def rms_norm(x: torch.Tensor, normalized_shape, weight: torch.Tensor | None = None, eps: float | None = None,
             backend: str | None = None) -> torch.Tensor:
    """Drop-in for torch.nn.functional.rms_norm (eps=None: torch.finfo(x.dtype).eps, as torch does).
    Differentiable in x and weight."""
    shape, hidden, p = _check(x, normalized_shape, {"weight": weight})
    eps = torch.finfo(x.dtype).eps if eps is None else _eps(eps, "eps")
    be = _rms_norm_fwd.resolve(backend, x.device)
    if x.dtype == torch.float64 or hidden == 0:
        return _native(x, normalized_shape, weight, None, eps, rms=True)
    x2 = x.reshape(-1, hidden).contiguous()
    y, _ = _rms_norm_fwd(x2, p["weight"], float(eps), be)
    return y.reshape(shape)
