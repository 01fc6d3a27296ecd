"""int8 GEMMs with a fused epilogue (one kernel per call on every backend).

W8A8:        y[M, N] = act(float(sum_k x_q[m,k] * w_q[n,k]) * row_scale[m] * col_scale[n] + bias[n])
Weight-only: y[M, N] = act((sum_k x[m,k] * float(w_q[n,k])) * w_scale[n] + bias[n])

The W8A8 sum is exact in int32 (K <= 131071 so no int8 x int8 sum can overflow); the epilogue is
float32, evaluated left to right. The weight-only sum is fp32 (order differs between backends).
``act`` is "none", "relu" or "gelu" (exact erf form). Output float32 / float16 / bfloat16.
Inference only: no gradients.
"""

from __future__ import annotations

import torch

from kernelflow import _backend
from kernelflow._array import mat
from kernelflow._ext import require_ext

MAX_K = 131071
ACTIVATIONS = {"none": 0, "relu": 1, "gelu": 2}
_OUT = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
        torch.float32: torch.float32, torch.float16: torch.float16, torch.bfloat16: torch.bfloat16}


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


def _ptr(t):
    return 0 if t is None else t.data_ptr()


@torch.library.custom_op("kernelflow::int8_gemm", mutates_args=())
def _int8_gemm_op(x_q: torch.Tensor, w_q: torch.Tensor, row_scale: torch.Tensor, col_scale: torch.Tensor,
                  bias: torch.Tensor | None, act: int, out_dtype: torch.dtype, backend: str) -> torch.Tensor:
    if backend == "torch":
        return int8_gemm_reference(x_q, w_q, row_scale, col_scale, bias, act, out_dtype)
    M, N = x_q.shape[0], w_q.shape[0]
    out = torch.empty((M, N), dtype=out_dtype, device=x_q.device)
    xq, wq = x_q.contiguous(), w_q.contiguous()
    rs, cs = row_scale.float().contiguous(), col_scale.float().contiguous()
    b = None if bias is None else bias.float().contiguous()
    if backend == "triton":
        from kernelflow.triton.int8_gemm import int8_gemm as tg  # noqa: PLC0415

        tg(xq, wq, rs, cs, b, act, out)
    elif backend == "cpu":
        require_ext().int8_gemm_cpu(mat(xq), mat(wq), rs.data_ptr(), cs.data_ptr(), _ptr(b), act, mat(out))
    elif backend == "cuda":
        with torch.cuda.device(xq.device):
            require_ext().int8_gemm_cuda(mat(xq), mat(wq), rs.data_ptr(), cs.data_ptr(), _ptr(b), act, mat(out),
                                         torch.cuda.current_stream(xq.device).cuda_stream)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    return out


@_int8_gemm_op.register_fake
def _(x_q, w_q, row_scale, col_scale, bias, act, out_dtype, backend):
    return x_q.new_empty((x_q.shape[0], w_q.shape[0]), dtype=out_dtype)


@torch.library.custom_op("kernelflow::weight_only_gemm", mutates_args=())
def _weight_only_op(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None,
                    act: int, out_dtype: torch.dtype, backend: str) -> torch.Tensor:
    if backend == "torch":
        return weight_only_gemm_reference(x, w_q, w_scale, bias, act, out_dtype)
    out = torch.empty((x.shape[0], w_q.shape[0]), dtype=out_dtype, device=x.device)
    wq, ws = w_q.contiguous(), w_scale.float().contiguous()
    b = None if bias is None else bias.float().contiguous()
    if backend == "triton":
        from kernelflow.triton.int8_gemm import weight_only_gemm as tw  # noqa: PLC0415

        tw(x, wq, ws, b, act, out)
    elif backend == "cpu":
        require_ext().weight_only_gemm_cpu(mat(x), mat(wq), ws.data_ptr(), _ptr(b), act, mat(out))
    elif backend == "cuda":
        with torch.cuda.device(x.device):
            require_ext().weight_only_gemm_cuda(mat(x), mat(wq), ws.data_ptr(), _ptr(b), act, mat(out),
                                                torch.cuda.current_stream(x.device).cuda_stream)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    return out


@_weight_only_op.register_fake
def _(x, w_q, w_scale, bias, act, out_dtype, backend):
    return x.new_empty((x.shape[0], w_q.shape[0]), dtype=out_dtype)


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
    dt = default_out if out_dtype is None else _OUT.get(out_dtype)
    if dt is None:
        raise ValueError(f"out_dtype must be float32, float16 or bfloat16, got {out_dtype!r}")
    return dt


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
                         ACTIVATIONS[activation], dt, _backend.resolve(backend, dev))


def weight_only_gemm(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None,
                     activation: str = "none", out_dtype=None, backend: str | None = None) -> torch.Tensor:
    """Weight-only int8 GEMM: x [M, K] float32/float16/bfloat16, w_q [N, K] int8, w_scale [N] -> [M, N]
    (out_dtype defaults to x's dtype)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError("x must be a 2-D float32/float16/bfloat16 torch.Tensor [M, K]")
    dt = _check_common(x, w_q, w_scale, "w_scale", bias, activation, out_dtype, x.dtype)
    dev = x.device
    return _weight_only_op(x, w_q, w_scale.to(dev), None if bias is None else bias.to(dev),
                           ACTIVATIONS[activation], dt, _backend.resolve(backend, dev))
