"""ONNX translations of the quant and int8-GEMM families as QuantizeLinear / DequantizeLinear
(symmetric: every zero point is int8 0) feeding float GEMMs (opset 19).

* ``quantize_static(x, scale [1])`` -> QuantizeLinear(x, scale, 0): per-tensor static scale.
* ``quantize_rows(x)`` (dynamic per-row scales) has no TensorRT equivalent: it raises, asking
  for calibration data (static scales) or weight-only quantization.
* ``dequantize_rows(q, scale [M])`` -> DequantizeLinear(q, scale, 0, axis=0).
* ``int8_gemm(x_q, w_q, row_scale, col_scale, bias)`` -> DequantizeLinear(x_q) (per-tensor when
  ``row_scale`` is the expanded static scale of an Int8Linear, per row otherwise) and
  DequantizeLinear(w_q, col_scale, axis=0) -> Gemm(transB=1) with the bias, then the activation.
* ``weight_only_gemm(x, w_q, w_scale, bias)`` -> DequantizeLinear(w_q, w_scale, axis=0) -> Gemm.

QuantizeLinear rounds x / scale half to even and saturates to [-128, 127]; the kernels multiply
by the reciprocal and saturate to [-127, 127]: codes can differ by one step at exact ties and
at -128, within the quantized model's own error.
"""

from __future__ import annotations

import numpy as np
from onnxscript import ir
from onnxscript import opset19 as op

from kernelflow.deploy.onnx_ops.int8 import dynamic_error

_F32, _I8 = ir.DataType.FLOAT, ir.DataType.INT8


def _scalar_shape():
    return op.Constant(value=ir.tensor(np.zeros(0, dtype=np.int64)))  # Reshape to a 0-d tensor


def _zero(n: int | None = None):
    if n is None:
        return op.Constant(value=ir.tensor(0, dtype=_I8))
    return op.Constant(value=ir.tensor([0] * n, dtype=_I8))


def _act(y, act: int):
    if int(act) == 1:
        return op.Relu(y)
    if int(act) == 2:  # exact gelu: 0.5 x (1 + erf(x / sqrt 2))
        half = op.CastLike(op.Constant(value_float=0.5), y)
        one = op.CastLike(op.Constant(value_float=1.0), y)
        r2 = op.CastLike(op.Constant(value_float=0.7071067811865476), y)
        return op.Mul(op.Mul(half, y), op.Add(one, op.Erf(op.Mul(y, r2))))
    return y


def _static_scale(row_scale):
    """The per-tensor scale behind ``row_scale`` when it is an Expand of one value (a static
    Int8Linear), else None."""
    node = row_scale.producer() if hasattr(row_scale, "producer") else None
    if node is not None and node.op_type == "Expand":
        src = node.inputs[0]
        dims = list(src.shape) if src is not None and src.shape is not None else None
        if dims is not None and all(isinstance(d, int) and d == 1 for d in dims):
            return op.Reshape(src, _scalar_shape())
    return None


def quantize_static(x, scale, backend: str):
    """x [M, K] float, scale [1] float32 -> [M, K] int8."""
    s = op.Reshape(op.Cast(scale, to=_F32), _scalar_shape())
    return op.QuantizeLinear(op.Cast(x, to=_F32), s, _zero())


def quantize_rows(x, backend: str):
    raise dynamic_error()


def dequantize_rows(q, scale, out_dtype: int, backend: str):
    """q [M, K] int8, scale [M] float32 -> [M, K] of out_dtype."""
    y = op.DequantizeLinear(q, op.Cast(scale, to=_F32), axis=0)
    return op.Cast(y, to=int(out_dtype))


def _gemm(a, w_q, w_scale, bias, act: int, out_dtype: int):
    w = op.DequantizeLinear(w_q, op.Cast(w_scale, to=_F32), axis=0)  # [N, K] float32
    args = (a, w) if bias is None else (a, w, op.Cast(bias, to=_F32))
    y = op.Gemm(*args, transB=1)
    return op.Cast(_act(y, act), to=int(out_dtype))


def int8_gemm(x_q, w_q, row_scale, col_scale, bias, act: int, out_dtype: int, backend: str):
    """x_q [M, K] int8, w_q [N, K] int8, row_scale [M], col_scale [N], bias [N] or None -> [M, N]."""
    s = _static_scale(row_scale)
    if s is not None:
        a = op.DequantizeLinear(x_q, op.Cast(s, to=_F32))
    else:
        a = op.DequantizeLinear(x_q, op.Cast(row_scale, to=_F32), axis=0)
    return _gemm(a, w_q, col_scale, bias, act, out_dtype)


def int8_linear(x, w_q, w_scale, bias, act_scale, w_packed, weight_only: bool, act: int, out_dtype: int,
                backend: str):
    """The fused Int8Linear op: x [M, K] float -> [M, N]. Weight-only: DequantizeLinear weights into a
    float Gemm; w8a8 with a static act_scale [1]: QuantizeLinear / DequantizeLinear of x first;
    dynamic scales (act_scale None) raise. ``w_packed`` (the CPU kernels' layout) is not used."""
    a = op.Cast(x, to=_F32)
    if not weight_only:
        if act_scale is None:
            raise dynamic_error()
        s = op.Reshape(op.Cast(act_scale, to=_F32), _scalar_shape())
        a = op.DequantizeLinear(op.QuantizeLinear(a, s, _zero()), s)
    return _gemm(a, w_q, w_scale, bias, act, out_dtype)


def weight_only_gemm(x, w_q, w_scale, bias, act: int, out_dtype: int, backend: str):
    """x [M, K] float, w_q [N, K] int8, w_scale [N], bias [N] or None -> [M, N] (float32 GEMM)."""
    return _gemm(op.Cast(x, to=_F32), w_q, w_scale, bias, act, out_dtype)
