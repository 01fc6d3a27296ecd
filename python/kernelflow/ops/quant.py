"""Symmetric int8 quantization: per-row (per output channel for weights, per token / sample for
activations) dynamic scales, static-scale quantization and dequantization. Every backend
(cuda, triton, cpu, torch) computes the same bits:

    absmax = max |x| over the row;  scale = absmax / 127;  inv = 127 / absmax   (float32, IEEE division)
    q = clamp(round_half_to_even(x * inv), -127, 127)                            (int8; -128 never used)

* rows whose absmax is below ``MIN_ABSMAX`` (1e-30, all-zero rows included) get scale = inv = 1, so q = 0;
* a row holding NaN or +-inf gets scale = NaN and q = 0: the non-finite value cannot be represented,
  so everything computed from that row (dequantized values, int8 GEMM outputs) is NaN, never a
  silently wrong finite number;
* static scale: q = clamp(round_half_to_even(x * (1 / scale)), -127, 127); values past the range
  saturate to +-127 (+-inf included) and NaN maps to 0 (a static scale cannot carry the NaN).

Dequantization is ``q * scale[row]`` in float32, cast to the output dtype.

Gradients: the int8 outputs carry none (integers); ``quantize_rows`` is differentiable through its
float scale output (d scale / dx = sign(x) / 127 at the row's absmax, shared among ties; 0 for rows
with a non-finite value or below MIN_ABSMAX), ``dequantize`` in its scale. The straight-through
estimator for a quantized layer is ``kernelflow.ops.int8_linear`` (what ``Int8Linear`` runs).
"""

from __future__ import annotations

import torch

from kernelflow._array import mat, out_dtype as _out_dtype
from kernelflow.ops._registry import kernel_op

MIN_ABSMAX = 1e-30
_FLOATS = (torch.float32, torch.float16, torch.bfloat16)


def _round_sat(y: torch.Tensor) -> torch.Tensor:
    return torch.round(y.clamp(-128.0, 128.0)).clamp(-127.0, 127.0)  # torch.round: half to even


def quantize_rows_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch reference: x [M, K] float -> (q [M, K] int8, scale [M] float32)."""
    xf = x.detach().to(torch.float32)
    M, K = xf.shape
    fin = torch.isfinite(xf)
    bad = (~fin).any(1) if K else torch.zeros(M, dtype=torch.bool, device=xf.device)
    zero = torch.zeros((), dtype=torch.float32, device=xf.device)
    amax = torch.where(fin, xf.abs(), zero).amax(1) if K else torch.zeros(M, device=xf.device)
    tiny = amax < MIN_ABSMAX
    safe = torch.where(tiny, torch.ones_like(amax), amax)
    # tensor / tensor: torch turns `scalar / tensor` into a reciprocal times a product (not IEEE division)
    c127 = torch.full_like(amax, 127.0)
    inv = torch.where(tiny, torch.ones_like(amax), c127 / safe)
    scale = torch.where(tiny, torch.ones_like(amax), safe / c127)
    scale = torch.where(bad, torch.full_like(scale, float("nan")), scale)
    q = _round_sat(torch.where(bad[:, None], zero, xf * inv[:, None]))
    return q.to(torch.int8), scale


def quantize_static_reference(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    xf = x.detach().to(torch.float32)
    s = scale.to(device=xf.device, dtype=torch.float32).reshape(())
    inv = torch.ones_like(s) / s
    y = torch.where(torch.isnan(xf), torch.zeros((), device=xf.device), xf * inv)
    return _round_sat(y).to(torch.int8)


def dequantize_rows_reference(q: torch.Tensor, scale: torch.Tensor, out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (q.to(torch.float32) * scale.to(device=q.device, dtype=torch.float32)[:, None]).to(out_dtype)


@kernel_op("kernelflow::quantize_rows", triton="kernelflow.triton.quant")
def _quantize_rows_op(x: torch.Tensor, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] float32/float16/bfloat16 -> (q [M, K] int8, scale [M] float32)."""


_quantize_rows_op.kernel("torch")(lambda k, x: quantize_rows_reference(x))


def _rows_out(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.empty(x.shape, dtype=torch.int8, device=x.device),   # q [M, K]
            torch.empty(x.shape[0], dtype=torch.float32, device=x.device))  # scale [M]


@_quantize_rows_op.kernel("triton")
def _(k, x):
    q, scale = _rows_out(x)
    k.triton.quantize_rows(x, q, scale)
    return q, scale


@_quantize_rows_op.kernel("cpu", "cuda")
def _(k, x):
    q, scale = _rows_out(x)
    k.call("quantize_rows", mat(x), mat(q), scale.data_ptr())
    return q, scale


@_quantize_rows_op.register_fake
def _(x, backend):
    return x.new_empty(x.shape, dtype=torch.int8), x.new_empty((x.shape[0],), dtype=torch.float32)


def _qrows_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _qrows_backward(ctx, grad_q, grad_scale):
    (x,) = ctx.saved_tensors
    if grad_scale is None or not ctx.needs_input_grad[0]:
        return None, None
    xf = x.float()
    fin = torch.isfinite(xf)
    a = torch.where(fin, xf.abs(), torch.zeros((), device=x.device))
    amax = a.amax(1, keepdim=True) if x.shape[1] else torch.zeros(x.shape[0], 1, device=x.device)
    ok = fin.all(1, keepdim=True) & (amax >= MIN_ABSMAX)
    at = (a == amax) & ok
    share = at.float() / at.sum(1, keepdim=True).clamp_min(1)
    return (share * torch.sign(xf) * (grad_scale.float()[:, None] / 127.0)).to(x.dtype), None


_quantize_rows_op.register_autograd(_qrows_backward, setup_context=_qrows_setup)


@kernel_op("kernelflow::quantize_static", triton="kernelflow.triton.quant")
def _quantize_static_op(x: torch.Tensor, scale: torch.Tensor, backend: str) -> torch.Tensor:
    """x [M, K] float, scale [1] float32 > 0 -> q [M, K] int8."""


_quantize_static_op.kernel("torch")(lambda k, x, scale: quantize_static_reference(x, scale))


def _static_args(x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q [M, K] int8 to write, scale [1] contiguous float32)."""
    return torch.empty(x.shape, dtype=torch.int8, device=x.device), scale.to(dtype=torch.float32).reshape(1).contiguous()


@_quantize_static_op.kernel("triton")
def _(k, x, scale):
    q, s = _static_args(x, scale)
    k.triton.quantize_static(x, s, q)
    return q


@_quantize_static_op.kernel("cpu", "cuda")
def _(k, x, scale):
    q, s = _static_args(x, scale)
    k.call("quantize_static", mat(x), s.data_ptr(), mat(q))
    return q


@_quantize_static_op.register_fake
def _(x, scale, backend):
    return x.new_empty(x.shape, dtype=torch.int8)


@kernel_op("kernelflow::dequantize_rows", triton="kernelflow.triton.quant")
def _dequantize_rows_op(q: torch.Tensor, scale: torch.Tensor, out_dtype: torch.dtype, backend: str) -> torch.Tensor:
    """q [M, K] int8, scale [M] float32 -> [M, K] of out_dtype (float32 product)."""


_dequantize_rows_op.kernel("torch")(lambda k, q, scale, out_dtype: dequantize_rows_reference(q, scale, out_dtype))


def _deq_args(q: torch.Tensor, scale: torch.Tensor, out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(out [M, K] of out_dtype to write, scale [M] contiguous float32)."""
    return torch.empty(q.shape, dtype=out_dtype, device=q.device), scale.to(dtype=torch.float32).contiguous()


@_dequantize_rows_op.kernel("triton")
def _(k, q, scale, out_dtype):
    out, s = _deq_args(q, scale, out_dtype)
    k.triton.dequantize_rows(q, s, out)
    return out


@_dequantize_rows_op.kernel("cpu", "cuda")
def _(k, q, scale, out_dtype):
    out, s = _deq_args(q, scale, out_dtype)
    k.call("dequantize_rows", mat(q), s.data_ptr(), mat(out))
    return out


@_dequantize_rows_op.register_fake
def _(q, scale, out_dtype, backend):
    return q.new_empty(q.shape, dtype=out_dtype)


def _deq_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])


def _deq_backward(ctx, grad):
    q, scale = ctx.saved_tensors
    g = (grad.float() * q.float()).sum(1).to(scale.dtype) if ctx.needs_input_grad[1] else None
    return None, g, None, None


_dequantize_rows_op.register_autograd(_deq_backward, setup_context=_deq_setup)


def _check_float_2d(x, arg: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{arg} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{arg} must be 2-D, got shape {tuple(x.shape)}")
    if x.dtype not in _FLOATS:
        raise TypeError(f"{arg} must be float32, float16 or bfloat16, got {x.dtype}")


def quantize_rows(x: torch.Tensor, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row dynamic int8 quantization of x [M, K] (float32/float16/bfloat16, any strides) in one
    kernel: returns (q [M, K] int8, scale [M] float32) with x ~= q * scale[:, None]."""
    _check_float_2d(x, "x")
    return _quantize_rows_op(x, _quantize_rows_op.resolve(backend, x.device))


def quantize_weight(w: torch.Tensor, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric quantization of a weight w [N, K]: (w_q [N, K] int8, scale [N] float32)."""
    _check_float_2d(w, "w")
    return _quantize_rows_op(w, _quantize_rows_op.resolve(backend, w.device))


quantize_activation = quantize_rows


def quantize_static(x: torch.Tensor, scale: float | torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """int8 quantization of x [M, K] with one given (per-tensor) scale > 0."""
    _check_float_2d(x, "x")
    s = torch.as_tensor(scale, dtype=torch.float32, device=x.device)
    if s.numel() != 1:
        raise ValueError(f"scale must be a single value, got shape {tuple(s.shape)}")
    if s.device.type == "cpu" and not (torch.isfinite(s).all() and bool(s.reshape(()) > 0)):
        raise ValueError(f"scale must be positive and finite, got {float(s.reshape(()))}")
    return _quantize_static_op(x, s.reshape(1), _quantize_static_op.resolve(backend, x.device))


def dequantize(q: torch.Tensor, scale: torch.Tensor, out_dtype="float32", backend: str | None = None) -> torch.Tensor:
    """q [M, K] int8 * scale [M] (per row) -> [M, K] of out_dtype (float32/float64/float16/bfloat16)."""
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8 or q.dim() != 2:
        raise TypeError("q must be a 2-D int8 torch.Tensor")
    if not isinstance(scale, torch.Tensor) or scale.shape != (q.shape[0],):
        raise ValueError(f"scale must be a tensor of shape ({q.shape[0]},)")
    dt = _out_dtype(out_dtype, "out_dtype")
    return _dequantize_rows_op(q, scale.to(device=q.device, dtype=torch.float32),
                               dt, _dequantize_rows_op.resolve(backend, q.device))
