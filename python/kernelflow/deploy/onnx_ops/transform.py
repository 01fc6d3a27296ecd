"""ONNX translation of ``kernelflow::numeric_transform`` (impute -> clip -> scale per column).

x [N, F], params [6, F] (fill, lo, hi, shift, inv_scale, offset):
    v = Where(IsNaN(x), fill, x);  v = Where(v < lo, lo, Where(v > hi, hi, v));  y = (v - shift) * inv + offset
computed in float32 (float64 only when x or the output is float64, which TensorRT cannot run:
``export_onnx`` replaces whole pipelines by their float32 form, see ``preprocess.py``). The
float64 parameter block is an initializer the exporter's constant folding casts to float32.
"""

from __future__ import annotations

from onnxscript import ir
from onnxscript import opset19 as op

_F32, _F64 = ir.DataType.FLOAT, ir.DataType.DOUBLE


def _row(p, i: int):
    return op.Gather(p, op.Constant(value_int=i), axis=0)  # [F]


def numeric_transform(x, params, out_dtype: int, backend: str):
    """x [N, F] float32/float64, params [6, F] -> [N, F] of out_dtype."""
    wide = x.dtype == _F64 or int(out_dtype) == int(_F64)
    ct = _F64 if wide else _F32
    xv = op.Cast(x, to=ct)
    p = op.Cast(params, to=ct)
    fill, lo, hi, shift, inv, off = (_row(p, i) for i in range(6))
    v = op.Where(op.IsNaN(xv), fill, xv)
    v = op.Where(op.Less(v, lo), lo, op.Where(op.Greater(v, hi), hi, v))  # NaN kept, as in the kernels
    y = op.Add(op.Mul(op.Sub(v, shift), inv), off)
    return op.Cast(y, to=int(out_dtype))
