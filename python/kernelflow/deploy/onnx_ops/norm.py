"""ONNX translations of the norm family (``kernelflow::layer_norm_fwd``, ``kernelflow::rms_norm_fwd``).

LayerNorm -> one LayerNormalization (opset 17; TensorRT parses it into its fused normalization
layer). RMSNorm -> Pow / ReduceMean / Add / Sqrt / Div / Mul in float32 (RMSNormalization is
opset 23, which TensorRT 10's parser does not take; TensorRT fuses this pattern itself). The
saved statistics (mean, rstd) are outputs of the ops for the backward; inference graphs do not
use them: ``export_onnx`` drops LayerNormalization's unused statistics outputs, as TensorRT
parses only its first output.
"""

from __future__ import annotations

from onnxscript import ir
from onnxscript import opset19 as op

_F32 = ir.DataType.FLOAT


def _ones_like_hidden(x):
    # [hidden] ones of x's type, for a missing weight (LayerNormalization needs a Scale input)
    hidden = op.Shape(x, start=-1)
    return op.CastLike(op.ConstantOfShape(hidden, value=ir.tensor([1.0], dtype=_F32)), x)


def layer_norm_fwd(x, weight, bias, eps: float, backend: str):
    """x [rows, hidden] float (fp32 statistics inside LayerNormalization), weight / bias [hidden]
    or None -> (y [rows, hidden] x's dtype, mean [rows] fp32, rstd [rows] fp32)."""
    w = _ones_like_hidden(x) if weight is None else op.CastLike(weight, x)
    args = (x, w) if bias is None else (x, w, op.CastLike(bias, x))
    y, mean, rstd = op.LayerNormalization(*args, axis=-1, epsilon=float(eps), stash_type=1)
    axes = op.Constant(value_ints=[-1])
    return y, op.Cast(op.Squeeze(mean, axes), to=_F32), op.Cast(op.Squeeze(rstd, axes), to=_F32)


def rms_norm_fwd(x, weight, eps: float, backend: str):
    """x [rows, hidden] float, weight [hidden] or None -> (y [rows, hidden] x's dtype, rstd [rows] fp32);
    the statistics are fp32 whatever x's dtype, as in the kernels."""
    x32 = op.Cast(x, to=_F32)
    ms = op.ReduceMean(op.Mul(x32, x32), op.Constant(value_ints=[-1]), keepdims=1)  # [rows, 1]
    denom = op.Sqrt(op.Add(ms, op.Constant(value_float=float(eps))))
    y32 = op.Div(x32, denom)
    if weight is not None:
        y32 = op.Mul(y32, op.Cast(weight, to=_F32))
    rstd = op.Reciprocal(op.Squeeze(denom, op.Constant(value_ints=[-1])))
    return op.CastLike(y32, x), rstd
