"""int8 layers as QuantizeLinear / DequantizeLinear graphs TensorRT fuses into int8 GEMMs.

``QDQLinear`` is the export form of ``kernelflow.nn.Int8Linear`` (built from its ``weight_q``
[out, in] int8, ``weight_scale`` [out] float32, ``bias`` [out], ``act_scale`` [1] buffers):

    w8a8 (static act_scale):  x -> QuantizeLinear(s_a, zp=int8 0) -> DequantizeLinear(s_a)  ─┐
                              w_q^T [in, out] int8 -> DequantizeLinear(w_scale, axis=1) ────┴─> MatMul -> + bias -> act
    weight_only:              x ───────────────────────────────────────────────────────────┐
                              w_q^T [in, out] int8 -> DequantizeLinear(w_scale, axis=1) ────┴─> MatMul -> + bias -> act

Symmetric (zero point 0), per-output-channel weight scales, one per-tensor activation scale:
the pattern TensorRT's explicit quantization turns into one int8 GEMM (and ONNX Runtime into
QGemm / MatMulIntegerToFloat). The weight is stored transposed so the dequantized tensor feeds
MatMul directly (its output-channel axis is 1). Dynamic per-row activation scales have no such
form: exporting them raises and asks for calibration data. The GEMM runs in float32 with fp32
accumulation in ONNX Runtime (int32 in TensorRT's fused kernel).
"""

from __future__ import annotations

import torch
from torch import nn

ZERO = 0  # symmetric quantization: every zero point is 0


def dynamic_error(name: str = "") -> ValueError:
    where = f" ({name})" if name else ""
    return ValueError(
        f"Int8Linear{where} uses dynamic per-row activation scales, which have no TensorRT / ONNX QDQ "
        "equivalent: quantize with calibration data and static scales, e.g. "
        "kernelflow.quantize(model, mode='w8a8', calibration=batches, static=True), or use mode='weight_only'")


def _act(y: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "relu":
        return torch.relu(y)
    if activation == "gelu":
        return torch.nn.functional.gelu(y)  # exact erf form, as the kernels
    return y


def _q(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
    """QuantizeLinear(x [M, K] float32, scale [] float32, zp [] int8) -> [M, K] int8 (ONNX semantics
    in eager mode: round half to even of x / scale, saturate to [-128, 127])."""
    if torch.onnx.is_in_onnx_export():
        return torch.onnx.ops.symbolic("QuantizeLinear", (x, scale, zp), dtype=torch.int8, shape=x.shape, version=19)
    return torch.round(x / scale).clamp(-128, 127).to(torch.int8)


def _dq(q: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, axis: int | None = None) -> torch.Tensor:
    """DequantizeLinear(q int8, scale [] or [q.shape[axis]] float32, zp int8) -> float32."""
    if torch.onnx.is_in_onnx_export():
        attrs = {} if axis is None else {"axis": axis}
        return torch.onnx.ops.symbolic("DequantizeLinear", (q, scale, zp), attrs, dtype=torch.float32,
                                       shape=q.shape, version=19)
    s = scale if axis is None else scale.reshape([-1 if d == axis else 1 for d in range(q.dim())])
    return q.to(torch.float32) * s


class QDQLinear(nn.Module):
    """Export form of an ``Int8Linear``: x [..., in] -> [..., out] (see the module docstring)."""

    def __init__(self, lin: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if lin.mode == "w8a8" and lin.act_scale is None:
            raise dynamic_error()
        self.in_features, self.out_features = lin.in_features, lin.out_features
        self.mode, self.activation, self.dtype = lin.mode, lin.activation, dtype
        self.register_buffer("weight_qt", lin.weight_q.detach().cpu().t().contiguous())  # [in, out] int8
        self.register_buffer("weight_scale", lin.weight_scale.detach().float().cpu().clone())  # [out]
        self.register_buffer("weight_zp", torch.zeros(lin.out_features, dtype=torch.int8))  # [out]
        self.register_buffer("bias", None if lin.bias is None else lin.bias.detach().float().cpu().clone())  # [out]
        if lin.mode == "w8a8":
            self.register_buffer("act_scale", lin.act_scale.detach().float().cpu().reshape(()).clone())  # []
            self.register_buffer("act_zp", torch.zeros((), dtype=torch.int8))  # []
        else:
            self.act_scale = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features).to(torch.float32)
        if self.act_scale is not None:
            x2 = _dq(_q(x2, self.act_scale, self.act_zp), self.act_scale, self.act_zp)
        w = _dq(self.weight_qt, self.weight_scale, self.weight_zp, axis=1)  # [in, out] float32
        y = x2 @ w
        if self.bias is not None:
            y = y + self.bias
        y = _act(y, self.activation)
        return y.to(self.dtype).reshape(*lead, self.out_features)
