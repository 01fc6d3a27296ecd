"""int8 GEMMs with a fused epilogue (one kernel per call on every backend).

W8A8:        y[M, N] = act(float(sum_k x_q[m,k] * w_q[n,k]) * row_scale[m] * col_scale[n] + bias[n])
Weight-only: y[M, N] = act((sum_k x[m,k] * float(w_q[n,k])) * w_scale[n] + bias[n])

The W8A8 sum is exact in int32 (K <= 131071 so no int8 x int8 sum can overflow); the epilogue is
float32, evaluated left to right. The weight-only sum has fp32 accuracy (order and method differ
between backends: fp32 FMA; on the CPU's avx512 and amx paths, x in 24-bit fixed point per row
times w summed exactly in int64).
``act`` is "none", "relu" (NaN stays NaN, as torch.relu) or "gelu" (exact erf form). Output
float32 / float16 / bfloat16.

On the CPU the weights are read in a packed layout (16-column panels, see csrc/cpu/int8_pack.h):
``pack_weight(w_q)`` makes it once (``Int8Linear`` keeps it in a buffer); without it each call packs.
The CPU code path (``cpu_path()``: "amx" = AMX-INT8 tiles for W8A8 calls of 8 rows or more and
weight-only calls of 4 rows or more (fewer rows: the avx512 kernels), "avx512" = AVX512-VNNI;
weight-only on both: x in 24-bit fixed point split into three u8 digits, three exact int8 products
(the same bits on either path); a call whose x holds NaN or inf, or with K > 65536, runs AVX-512
FMA; "avx2" =
AVX2 int16 vpmaddwd / FMA, "portable") is chosen from the CPU's features (amx also needs the OS's
tile permission); ``set_cpu_path`` or the environment variable ``KERNELFLOW_INT8_PATH`` forces one.
Every path gives the exact integer sums.

Gradients: ``int8_gemm`` is differentiable in its float arguments (row_scale, col_scale, bias),
``weight_only_gemm`` in x, w_scale and bias, and ``int8_linear`` (quantize + GEMM in one op, what
``Int8Linear`` runs) in x through the straight-through estimator: the gradient of the quantizer is
taken as the identity, so dy/dx is that of x @ (w_q * w_scale)^T. Integer tensors carry no gradient.
"""

from __future__ import annotations

import torch

from kernelflow._array import mat
from kernelflow._dtypes import LOW_FLOATS, as_dtype
from kernelflow._ext import require_ext
from kernelflow.ops._registry import kernel_op

MAX_K = 131071
ACTIVATIONS = {"none": 0, "relu": 1, "gelu": 2}


def _act(v: torch.Tensor, act: int) -> torch.Tensor:
    if act == 1:
        return torch.relu(v)
    if act == 2:
        return torch.nn.functional.gelu(v)
    return v


def int8_gemm_exact(x_q: torch.Tensor, w_q: torch.Tensor) -> torch.Tensor:
    """Exact x_q @ w_q^T as int64 (through float64, exact while K * 2^14 < 2^53)."""
    return (x_q.to(torch.float64) @ w_q.to(torch.float64).T).to(torch.int64)


def int8_gemm_reference(x_q, w_q, row_scale, col_scale, bias=None, act: int = 0, out_dtype=torch.float32):
    acc = int8_gemm_exact(x_q, w_q).to(torch.float32)
    v = acc * row_scale.float()[:, None] * col_scale.float()[None, :]
    if bias is not None:
        v = v + bias.float()[None, :]
    return _act(v, act).to(out_dtype)


def weight_only_gemm_reference(x, w_q, w_scale, bias=None, act: int = 0, out_dtype=torch.float32):
    """float64 reference of the weight-only GEMM."""
    v = (x.detach().to(torch.float64) @ w_q.to(torch.float64).T) * w_scale.double()[None, :]
    if bias is not None:
        v = v + bias.double()[None, :]
    return _act(v, act).to(out_dtype)


def _dact(pre: torch.Tensor, act: int) -> torch.Tensor:
    """d act(v) / dv at the pre-activation (float32)."""
    if act == 1:
        return (pre > 0).to(pre.dtype)
    if act == 2:
        cdf = 0.5 * (1.0 + torch.erf(pre * 0.7071067811865476))
        return cdf + pre * torch.exp(-0.5 * pre * pre) * 0.3989422804014327
    return torch.ones_like(pre)


def _ptr(t):
    return 0 if t is None else t.data_ptr()


def _packed_args(w_packed):
    return (0, 0) if w_packed is None else (w_packed.data_ptr(), w_packed.numel())


def cpu_path() -> str:
    """The code path of the CPU int8 GEMMs on this machine: "amx", "avx512", "avx2" or "portable"."""
    return require_ext().int8_cpu_path()


def cpu_paths() -> list[str]:
    """The CPU int8 GEMM paths this CPU can run."""
    return list(require_ext().int8_cpu_paths())


def set_cpu_path(path: str) -> None:
    """Force the CPU int8 path ("portable", "avx2", "avx512", "amx") for the process, or "auto"."""
    if not isinstance(path, str):
        raise TypeError(f"path must be a string, got {type(path).__name__}")
    require_ext().set_int8_cpu_path(path)


def pack_weight(w_q: torch.Tensor) -> torch.Tensor | None:
    """w_q [N, K] int8 in the packed layout the CPU kernels read (uint8, 1-D); None when w_q is not a
    CPU tensor or the extension is not built (the other backends read w_q itself)."""
    if not isinstance(w_q, torch.Tensor) or w_q.dtype != torch.int8 or w_q.dim() != 2:
        raise TypeError("w_q must be a 2-D int8 torch.Tensor [N, K]")
    from kernelflow._ext import ext  # noqa: PLC0415

    if w_q.device.type != "cpu" or ext() is None:
        return None
    wq = w_q.contiguous()
    n = ext().int8_packed_bytes(wq.shape[0], wq.shape[1])
    out = torch.empty(n, dtype=torch.uint8)
    ext().int8_pack_cpu(mat(wq), out.data_ptr(), n)
    return out


@kernel_op("kernelflow::int8_gemm", triton="kernelflow.triton.int8_gemm")
def _int8_gemm_op(x_q: torch.Tensor, w_q: torch.Tensor, row_scale: torch.Tensor, col_scale: torch.Tensor,
                  bias: torch.Tensor | None, act: int, out_dtype: torch.dtype, backend: str) -> torch.Tensor:
    """x_q [M, K] int8, w_q [N, K] int8, row_scale [M], col_scale [N], bias [N] or None -> [M, N] of
    out_dtype (int32 sums, fp32 epilogue)."""


_int8_gemm_op.kernel("torch")(lambda k, *args: int8_gemm_reference(*args))


def _gemm_args(x_q, w_q, row_scale, col_scale, bias, out_dtype):
    """(out [M, N] to write, x_q, w_q contiguous, row_scale [M], col_scale [N], bias [N] contiguous fp32 or None)."""
    out = torch.empty((x_q.shape[0], w_q.shape[0]), dtype=out_dtype, device=x_q.device)
    b = None if bias is None else bias.float().contiguous()
    return out, x_q.contiguous(), w_q.contiguous(), row_scale.float().contiguous(), col_scale.float().contiguous(), b


@_int8_gemm_op.kernel("triton")
def _(k, x_q, w_q, row_scale, col_scale, bias, act, out_dtype):
    out, xq, wq, rs, cs, b = _gemm_args(x_q, w_q, row_scale, col_scale, bias, out_dtype)
    k.triton.int8_gemm(xq, wq, rs, cs, b, act, out)
    return out


@_int8_gemm_op.kernel("cpu")
def _(k, x_q, w_q, row_scale, col_scale, bias, act, out_dtype):
    out, xq, wq, rs, cs, b = _gemm_args(x_q, w_q, row_scale, col_scale, bias, out_dtype)
    k.C.int8_gemm_cpu(mat(xq), mat(wq), 0, 0, rs.data_ptr(), cs.data_ptr(), _ptr(b), act, mat(out))
    return out


@_int8_gemm_op.kernel("cuda")
def _(k, x_q, w_q, row_scale, col_scale, bias, act, out_dtype):
    out, xq, wq, rs, cs, b = _gemm_args(x_q, w_q, row_scale, col_scale, bias, out_dtype)
    k.C.int8_gemm_cuda(mat(xq), mat(wq), rs.data_ptr(), cs.data_ptr(), _ptr(b), act, mat(out), k.stream)
    return out


@_int8_gemm_op.register_fake
def _(x_q, w_q, row_scale, col_scale, bias, act, out_dtype, backend):
    return x_q.new_empty((x_q.shape[0], w_q.shape[0]), dtype=out_dtype)


def _int8_gemm_setup(ctx, inputs, output):
    x_q, w_q, row_scale, col_scale, bias, act, out_dtype, backend = inputs
    ctx.act, ctx.has_bias = act, bias is not None
    ctx.save_for_backward(x_q, w_q, row_scale, col_scale, bias)


def _int8_gemm_backward(ctx, grad):
    x_q, w_q, rs, cs, bias = ctx.saved_tensors
    acc = int8_gemm_exact(x_q, w_q).to(torch.float32)
    pre = acc * rs.float()[:, None] * cs.float()[None, :]
    if bias is not None:
        pre = pre + bias.float()[None, :]
    g = grad.float() * _dact(pre, ctx.act)
    ga = g * acc
    g_rs = (ga * cs.float()[None, :]).sum(1).to(rs.dtype) if ctx.needs_input_grad[2] else None
    g_cs = (ga * rs.float()[:, None]).sum(0).to(cs.dtype) if ctx.needs_input_grad[3] else None
    g_b = g.sum(0).to(bias.dtype) if bias is not None and ctx.needs_input_grad[4] else None
    return None, None, g_rs, g_cs, g_b, None, None, None


_int8_gemm_op.register_autograd(_int8_gemm_backward, setup_context=_int8_gemm_setup)


@kernel_op("kernelflow::weight_only_gemm", triton="kernelflow.triton.int8_gemm")
def _weight_only_op(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None,
                    act: int, out_dtype: torch.dtype, backend: str) -> torch.Tensor:
    """x [M, K] float, w_q [N, K] int8, w_scale [N], bias [N] or None -> [M, N] of out_dtype (fp32 sums)."""


_weight_only_op.kernel("torch")(lambda k, *args: weight_only_gemm_reference(*args))


def _wo_args(x, w_q, w_scale, bias, out_dtype):
    """(out [M, N] to write, w_q contiguous, w_scale [N] and bias [N] contiguous fp32 (bias or None))."""
    out = torch.empty((x.shape[0], w_q.shape[0]), dtype=out_dtype, device=x.device)
    b = None if bias is None else bias.float().contiguous()
    return out, w_q.contiguous(), w_scale.float().contiguous(), b


@_weight_only_op.kernel("triton")
def _(k, x, w_q, w_scale, bias, act, out_dtype):
    out, wq, ws, b = _wo_args(x, w_q, w_scale, bias, out_dtype)
    k.triton.weight_only_gemm(x, wq, ws, b, act, out)
    return out


@_weight_only_op.kernel("cpu")
def _(k, x, w_q, w_scale, bias, act, out_dtype):
    out, wq, ws, b = _wo_args(x, w_q, w_scale, bias, out_dtype)
    k.C.weight_only_gemm_cpu(mat(x), mat(wq), 0, 0, ws.data_ptr(), _ptr(b), act, mat(out))
    return out


@_weight_only_op.kernel("cuda")
def _(k, x, w_q, w_scale, bias, act, out_dtype):
    out, wq, ws, b = _wo_args(x, w_q, w_scale, bias, out_dtype)
    k.C.weight_only_gemm_cuda(mat(x), mat(wq), ws.data_ptr(), _ptr(b), act, mat(out), k.stream)
    return out


@_weight_only_op.register_fake
def _(x, w_q, w_scale, bias, act, out_dtype, backend):
    return x.new_empty((x.shape[0], w_q.shape[0]), dtype=out_dtype)


def _wo_setup(ctx, inputs, output):
    x, w_q, w_scale, bias, act, out_dtype, backend = inputs
    ctx.act, ctx.backend = act, backend
    ctx.save_for_backward(x, w_q, w_scale, bias)


def _dequantized_grads(ctx, grad):
    """Gradients of y = act((x @ w_q^T) * ws + bias) for x [M, K], ws [N], bias [N] (fp32 maths):
    (g_x, g_ws, g_b), each None where not needed. The inputs are (x, w_q, ws, bias, ...)."""
    x, w_q, ws, bias = ctx.saved_tensors
    xw = x.float() @ w_q.float().T  # [M, N]
    pre = xw * ws.float()[None, :]
    if bias is not None:
        pre = pre + bias.float()[None, :]
    g = grad.float() * _dact(pre, ctx.act)
    g_x = (g @ (w_q.float() * ws.float()[:, None])).to(x.dtype) if ctx.needs_input_grad[0] else None
    g_ws = (g * xw).sum(0).to(ws.dtype) if ctx.needs_input_grad[2] else None
    g_b = g.sum(0).to(bias.dtype) if bias is not None and ctx.needs_input_grad[3] else None
    return g_x, g_ws, g_b


def _wo_backward(ctx, grad):
    g_x, g_ws, g_b = _dequantized_grads(ctx, grad)
    return g_x, None, g_ws, g_b, None, None, None


_weight_only_op.register_autograd(_wo_backward, setup_context=_wo_setup)


# ---- int8_linear: quantize (w8a8) + GEMM in one op, straight-through gradient ----------------

@kernel_op("kernelflow::int8_linear")
def _int8_linear_op(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None,
                    act_scale: torch.Tensor | None, w_packed: torch.Tensor | None, weight_only: bool, act: int,
                    out_dtype: torch.dtype, backend: str) -> torch.Tensor:
    """x [M, K] float, w_q [N, K] int8, w_scale [N], bias [N] or None, act_scale [1] or None (dynamic
    per-row), w_packed (CPU packed w_q) or None -> [M, N] of out_dtype."""


def _quantized_x(k, x, act_scale):
    """(x_q [M, K] int8, row scale [M] float32): per row, or with the static act_scale [1]."""
    from kernelflow.ops import quant  # noqa: PLC0415

    if act_scale is None:
        return quant._quantize_rows_op.kernels(x, k.backend)
    return quant._quantize_static_op.kernels(x, act_scale, k.backend), act_scale.float().expand(x.shape[0]).contiguous()


@_int8_linear_op.kernel("torch", "triton", "cuda")
def _(k, x, w_q, w_scale, bias, act_scale, w_packed, weight_only, act, out_dtype):
    # the quantizer and the GEMM of the same backend, one after the other (w_packed is CPU-only)
    if weight_only:
        return _weight_only_op.kernels(x, w_q, w_scale, bias, act, out_dtype, k.backend)
    q, s = _quantized_x(k, x, act_scale)
    return _int8_gemm_op.kernels(q, w_q, s, w_scale, bias, act, out_dtype, k.backend)


@_int8_linear_op.kernel("cpu")
def _(k, x, w_q, w_scale, bias, act_scale, w_packed, weight_only, act, out_dtype):
    # the CPU GEMMs read the weights packed once (Int8Linear's buffer) when w_packed is given; w8a8
    # quantizes x inside the same binding call (no separate quantize op round trip)
    out = torch.empty((x.shape[0], w_q.shape[0]), dtype=out_dtype)
    b = None if bias is None else bias.float().contiguous()
    ws = w_scale.float().contiguous()
    if weight_only:
        k.C.weight_only_gemm_cpu(mat(x), mat(w_q.contiguous()), *_packed_args(w_packed), ws.data_ptr(), _ptr(b), act,
                                 mat(out))
        return out
    a = None if act_scale is None else act_scale.float().reshape(1).contiguous()
    k.C.int8_linear_cpu(mat(x), mat(w_q.contiguous()), *_packed_args(w_packed), ws.data_ptr(), _ptr(b), _ptr(a), act,
                        mat(out))
    return out


@_int8_linear_op.register_fake
def _(x, w_q, w_scale, bias, act_scale, w_packed, weight_only, act, out_dtype, backend):
    return x.new_empty((x.shape[0], w_q.shape[0]), dtype=out_dtype)


def _lin_setup(ctx, inputs, output):
    x, w_q, w_scale, bias, act_scale, w_packed, weight_only, act, out_dtype, backend = inputs
    ctx.act = act
    ctx.save_for_backward(x, w_q, w_scale, bias)


def _lin_backward(ctx, grad):
    # straight-through: the activation quantizer's gradient is the identity
    g_x, g_ws, g_b = _dequantized_grads(ctx, grad)
    return g_x, None, g_ws, g_b, None, None, None, None, None, None


_int8_linear_op.register_autograd(_lin_backward, setup_context=_lin_setup)


def int8_linear(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None,
                act_scale: torch.Tensor | None = None, w_packed: torch.Tensor | None = None, mode: str = "w8a8",
                activation: str = "none", out_dtype=None, backend: str | None = None) -> torch.Tensor:
    """act(x @ (w_q * w_scale[:, None])^T + bias) for x [M, K] float: mode "w8a8" quantizes x per row
    (or with the static ``act_scale`` [1]) and runs the exact int8 GEMM; "weight_only" dequantizes
    w_q inside the GEMM. ``w_packed`` is ``pack_weight(w_q)`` (CPU), or None to pack per call."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError("x must be a 2-D float32/float16/bfloat16 torch.Tensor [M, K]")
    if mode not in ("w8a8", "weight_only"):
        raise ValueError(f"mode must be 'w8a8' or 'weight_only', got {mode!r}")
    if x.shape[1] > MAX_K and mode == "w8a8":
        raise ValueError(f"K={x.shape[1]} exceeds {MAX_K}: int32 accumulation could overflow")
    dt = _check_common(x, w_q, w_scale, "w_scale", bias, activation, out_dtype, x.dtype)
    if act_scale is not None and (not isinstance(act_scale, torch.Tensor) or act_scale.numel() != 1):
        raise ValueError("act_scale must be None or a tensor holding one value")
    if w_packed is not None:
        if not isinstance(w_packed, torch.Tensor) or w_packed.dtype != torch.uint8 or w_packed.dim() != 1:
            raise TypeError("w_packed must be a 1-D uint8 tensor from pack_weight(w_q)")
    dev = x.device
    be = _int8_linear_op.resolve(backend, dev)
    # the packed weights are CPU data, read by the CPU kernel only (the other kernels ignore them)
    packed = w_packed if (w_packed is not None and dev.type == "cpu" and w_packed.device.type == "cpu") else None
    return _int8_linear_op(x, w_q, w_scale.to(dev), None if bias is None else bias.to(dev),
                           None if act_scale is None else act_scale.to(dev).reshape(1), packed,
                           mode == "weight_only", ACTIVATIONS[activation], dt, be)


def _check_common(x, w_q, scale, scale_arg, bias, activation, out_dtype, default_out):
    if not isinstance(w_q, torch.Tensor) or w_q.dtype != torch.int8 or w_q.dim() != 2:
        raise TypeError("w_q must be a 2-D int8 torch.Tensor [N, K]")
    if w_q.shape[1] != x.shape[1]:
        raise ValueError(f"w_q must have K={x.shape[1]} columns, got shape {tuple(w_q.shape)}")
    if w_q.device != x.device:
        raise ValueError(f"w_q is on {w_q.device} but x is on {x.device}")
    N = w_q.shape[0]
    if not isinstance(scale, torch.Tensor) or scale.shape != (N,):
        raise ValueError(f"{scale_arg} must be a tensor of shape ({N},)")
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (N,)):
        raise ValueError(f"bias must be None or a tensor of shape ({N},)")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    return default_out if out_dtype is None else as_dtype(out_dtype, LOW_FLOATS, "out_dtype")


def int8_gemm(x_q: torch.Tensor, w_q: torch.Tensor, row_scale: torch.Tensor, col_scale: torch.Tensor,
              bias: torch.Tensor | None = None, activation: str = "none", out_dtype="float32",
              backend: str | None = None) -> torch.Tensor:
    """W8A8 GEMM: x_q [M, K] int8, w_q [N, K] int8, row_scale [M], col_scale [N], bias [N] -> [M, N]."""
    if not isinstance(x_q, torch.Tensor) or x_q.dtype != torch.int8 or x_q.dim() != 2:
        raise TypeError("x_q must be a 2-D int8 torch.Tensor [M, K]")
    if x_q.shape[1] > MAX_K:
        raise ValueError(f"K={x_q.shape[1]} exceeds {MAX_K}: int32 accumulation could overflow")
    if not isinstance(row_scale, torch.Tensor) or row_scale.shape != (x_q.shape[0],):
        raise ValueError(f"row_scale must be a tensor of shape ({x_q.shape[0]},)")
    dt = _check_common(x_q, w_q, col_scale, "col_scale", bias, activation, out_dtype, torch.float32)
    dev = x_q.device
    return _int8_gemm_op(x_q, w_q, row_scale.to(dev), col_scale.to(dev), None if bias is None else bias.to(dev),
                         ACTIVATIONS[activation], dt, _int8_gemm_op.resolve(backend, dev))


def weight_only_gemm(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None,
                     activation: str = "none", out_dtype=None, backend: str | None = None) -> torch.Tensor:
    """Weight-only int8 GEMM: x [M, K] float32/float16/bfloat16, w_q [N, K] int8, w_scale [N] -> [M, N]
    (out_dtype defaults to x's dtype)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError("x must be a 2-D float32/float16/bfloat16 torch.Tensor [M, K]")
    dt = _check_common(x, w_q, w_scale, "w_scale", bias, activation, out_dtype, x.dtype)
    dev = x.device
    return _weight_only_op(x, w_q, w_scale.to(dev), None if bias is None else bias.to(dev),
                           ACTIVATIONS[activation], dt, _int8_gemm_op.resolve(backend, dev))
