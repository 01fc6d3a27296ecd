"""Int8Linear: a drop-in for nn.Linear with int8 weights.

mode="w8a8": activations are quantized per row (dynamic scale, the default) or with one static
scale from calibration (``act_scale``), then one int8 GEMM kernel with exact int32 accumulation
applies both scales, the bias and the activation. mode="weight_only": the int8 weights are
dequantized inside the GEMM kernel and multiplied with the float activations (fp32 accumulation);
best for small batches, where reading the weights dominates.

The int8 weight, its per-output-channel float32 scales, the bias and a static activation scale
are buffers, so they are in ``state_dict``; ``save``/``load`` use safetensors (no pickle) with the
configuration as JSON metadata. For the CPU kernels the weight is also packed once (at
``from_float``, ``load`` / ``load_state_dict`` and whenever ``weight_q`` changes in place) into the
non-persistent ``weight_packed`` buffer that the micro-kernels read.

Gradients flow to the input (straight-through estimator: the activation quantizer counts as the
identity), so layers before a quantized one can be fine-tuned and ``torch.compile`` works in grad mode.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from kernelflow._dtypes import LOW_FLOATS, as_dtype
from kernelflow.ops.int8_gemm import ACTIVATIONS, int8_linear, pack_weight
from kernelflow.ops.quant import quantize_weight

MODES = ("w8a8", "weight_only")


class Int8Linear(nn.Module):
    """y = act(x @ W^T + b) with W stored as int8 [out_features, in_features] + float32 scale per row."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, mode: str = "w8a8",
                 act_scale: float | torch.Tensor | None = None, out_dtype=None, backend: str = "auto",
                 activation: str = "none") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        if act_scale is not None and mode != "w8a8":
            raise ValueError("act_scale (a static activation scale) only applies to mode='w8a8'")
        if int(in_features) <= 0 or int(out_features) <= 0:
            raise ValueError("in_features and out_features must be positive")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.mode, self.backend, self.activation = mode, backend, activation
        self.out_dtype = None if out_dtype is None else as_dtype(out_dtype, LOW_FLOATS, "out_dtype")
        self.register_buffer("weight_q", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features, dtype=torch.float32))
        self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float32) if bias else None)
        if act_scale is not None:
            s = torch.as_tensor(act_scale, dtype=torch.float32).reshape(1)
            if not (torch.isfinite(s).all() and s.item() > 0):
                raise ValueError(f"act_scale must be positive and finite, got {s.item()}")
            self.register_buffer("act_scale", s)
        else:
            self.register_buffer("act_scale", None)
        self.register_buffer("weight_packed", None, persistent=False)
        self._packed_version = None
        self.register_load_state_dict_post_hook(lambda mod, _keys: mod.repack())

    def repack(self) -> None:
        """Pack ``weight_q`` for the CPU kernels (done automatically; call after replacing the tensor)."""
        self.weight_packed = pack_weight(self.weight_q) if self.weight_q.device.type == "cpu" else None
        self._packed_version = (self.weight_q.data_ptr(), self.weight_q._version)

    def _packed(self) -> torch.Tensor | None:
        if self.weight_q.device.type != "cpu":
            return None
        if not torch.compiler.is_compiling() and self._packed_version != (self.weight_q.data_ptr(),
                                                                          self.weight_q._version):
            self.repack()  # weight_q was replaced or changed in place since it was packed
        return self.weight_packed

    @classmethod
    def from_float(cls, linear: nn.Linear, mode: str = "w8a8", act_scale=None, out_dtype=None,
                   backend: str = "auto", activation: str = "none") -> "Int8Linear":
        """Quantize an nn.Linear's weight per output channel (symmetric, absmax / 127)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach()
        if not torch.isfinite(w).all():
            raise ValueError("linear.weight holds NaN or inf; it cannot be quantized")
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, mode, act_scale, out_dtype,
                backend, activation)
        wf = w.float() if w.dtype not in (torch.float32, torch.float16, torch.bfloat16) else w
        q, s = quantize_weight(wf, backend=backend)
        m.weight_q.copy_(q.cpu())
        m.weight_scale.copy_(s.cpu())
        if linear.bias is not None:
            m.bias.copy_(linear.bias.detach().float().cpu())
        m = m.to(w.device)
        m.repack()
        return m

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_q.float() * self.weight_scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected {self.in_features} input features, got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        if x2.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            x2 = x2.float()
        out = self.out_dtype or x2.dtype
        b = self.backend  # resolved per call (traceable: torch.compile keeps the traced choice)
        y = int8_linear(x2, self.weight_q, self.weight_scale, self.bias, self.act_scale, self._packed(), self.mode,
                        self.activation, out, backend=b)
        if self.out_dtype is None and y.dtype != x.dtype and x.dtype.is_floating_point:
            y = y.to(x.dtype)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        s = f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, mode={self.mode}"
        if self.act_scale is not None:
            s += f", act_scale={self.act_scale.item():.4g}"
        return s + (f", activation={self.activation}" if self.activation != "none" else "")

    def config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias is not None,
                "mode": self.mode, "static": self.act_scale is not None, "backend": self.backend,
                "activation": self.activation,
                "out_dtype": None if self.out_dtype is None else str(self.out_dtype).replace("torch.", "")}

    def save(self, path: str) -> None:
        """Write the buffers as safetensors with the configuration as JSON metadata (no pickle)."""
        from safetensors.torch import save_file  # noqa: PLC0415

        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, path, metadata={"kernelflow": json.dumps({"class": "Int8Linear", **self.config()})})

    @classmethod
    def load(cls, path: str, device: str | torch.device = "cpu") -> "Int8Linear":
        from safetensors import safe_open  # noqa: PLC0415
        from safetensors.torch import load_file  # noqa: PLC0415

        with safe_open(path, framework="pt") as f:
            meta = (f.metadata() or {}).get("kernelflow")
        if meta is None:
            raise ValueError(f"{path} is not a kernelflow Int8Linear file (no 'kernelflow' metadata)")
        cfg = json.loads(meta)
        if cfg.pop("class", None) != "Int8Linear":
            raise ValueError(f"{path} does not hold an Int8Linear")
        static = cfg.pop("static")
        tensors = load_file(path)
        # load_state_dict would cast silently (a float weight_q of 1e9 became int8 zeros)
        want = {"weight_q": torch.int8, "weight_scale": torch.float32, "bias": torch.float32, "act_scale": torch.float32}
        for k, t in tensors.items():
            if k in want and t.dtype != want[k]:
                raise ValueError(f"{path}: {k} must be {want[k]}, got {t.dtype}")
        m = cls(act_scale=tensors["act_scale"] if static else None, **cfg)
        m.load_state_dict(tensors)
        m = m.to(device)
        m.repack()
        return m
