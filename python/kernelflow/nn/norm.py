"""LayerNorm and RMSNorm backed by the fused kernelflow norm kernels.

Subclasses of torch.nn.LayerNorm / torch.nn.RMSNorm: same constructor arguments, parameters and
state_dict keys, so checkpoints load either way; only forward (and its backward) changes.
"""

from __future__ import annotations

import torch
from torch import nn

from kernelflow._backend import _check_name
from kernelflow.ops.norm import layer_norm, rms_norm


class LayerNorm(nn.LayerNorm):
    """torch.nn.LayerNorm computed by kernelflow.ops.layer_norm on ``backend`` ("auto" resolves per call)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None, *, backend: str = "auto") -> None:
        super().__init__(normalized_shape, eps=eps, elementwise_affine=elementwise_affine, bias=bias,
                         device=device, dtype=dtype)
        self.backend = _check_name(backend)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps, backend=self.backend)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, backend={self.backend!r}"


class RMSNorm(nn.RMSNorm):
    """torch.nn.RMSNorm computed by kernelflow.ops.rms_norm on ``backend`` ("auto" resolves per call)."""

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True,
                 device=None, dtype=None, *, backend: str = "auto") -> None:
        super().__init__(normalized_shape, eps=eps, elementwise_affine=elementwise_affine, device=device, dtype=dtype)
        self.backend = _check_name(backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.normalized_shape, self.weight, self.eps, backend=self.backend)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, backend={self.backend!r}"
