"""The models of the workflow: an MLP on the preprocessed matrix (kernelflow.nn fused norms), the
end-to-end module that serves raw blocks (``Preprocess`` + MLP), and the regression
distillation loss."""

from __future__ import annotations

import os
import tempfile

import torch
from torch import nn

from kernelflow.nn import LayerNorm, RMSNorm


def mlp(in_features: int, hidden: list[int], out_features: int, dropout: float = 0.0, norm: str = "layernorm") -> nn.Sequential:
    """[N, in_features] -> [N, out_features]: (Linear -> norm -> ReLU -> Dropout) per hidden width, then Linear."""
    layers: list[nn.Module] = []
    w = in_features
    for h in hidden:
        layers.append(nn.Linear(w, h))
        if norm == "layernorm":
            layers.append(LayerNorm(h))
        elif norm == "rmsnorm":
            layers.append(RMSNorm(h))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        w = h
    layers.append(nn.Linear(w, out_features))
    return nn.Sequential(*layers)


def out_features(task: str, n_classes: int) -> int:
    """One logit per class (two for a binary task: the bundle's output is per class, in the
    order of ``classes``), one value for regression."""
    return n_classes if task == "classification" else 1


class TabularModel(nn.Module):
    """What is served: raw blocks -> fitted preprocessing -> network.

    forward(num [N, Fn] float32 (NaN = missing), cat [N, Fc] int64 codes (-1 = unknown),
    passthrough [N, Fp] float32 or None) -> [N, out] logits / predictions (float32)."""

    def __init__(self, pre: nn.Module, net: nn.Module) -> None:
        super().__init__()
        self.pre = pre
        self.net = net

    def forward(self, num: torch.Tensor, cat: torch.Tensor, passthrough: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.pre(num, cat, passthrough)).float()


class TargetScale(nn.Module):
    """y = x * std + mean: regression networks train on standardized targets; this last step
    gives predictions in the target's units (in the served module and the exported graph)."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


class RegressionDistillationLoss(nn.Module):
    """alpha * MSE(student, teacher) + (1 - alpha) * MSE(student, y): distillation for regression,
    where the teacher's predictions are soft targets (fp32)."""

    def __init__(self, alpha: float = 0.5) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        s = student.float().reshape(-1)
        t = teacher.float().reshape(-1)
        kd = torch.nn.functional.mse_loss(s, t)
        if y is None or self.alpha >= 1.0:
            return kd
        return self.alpha * kd + (1 - self.alpha) * torch.nn.functional.mse_loss(s, y.float().reshape(-1))


def n_parameters(m: nn.Module) -> int:
    """Parameters and int8 weight buffers (what the model stores), counted as values."""
    from kernelflow.nn.int8 import Int8Linear

    n = sum(p.numel() for p in m.parameters())
    for mod in m.modules():
        if isinstance(mod, Int8Linear):
            n += sum(b.numel() for name, b in mod.named_buffers(recurse=False) if name in ("weight", "qweight", "weight_q")
                     or b.dtype == torch.int8)
    return int(n)


def state_bytes(m: nn.Module) -> int:
    """Size in bytes of the module's weights saved as safetensors (the file a bundle would hold)."""
    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "w.safetensors")
        save_file(sd, p)
        return os.path.getsize(p)
