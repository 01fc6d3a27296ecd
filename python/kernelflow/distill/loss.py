"""``DistillationLoss``: the fused distillation loss as an ``nn.Module``."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from kernelflow.ops.distill import REDUCTIONS, distill_loss


class DistillationLoss(nn.Module):
    """alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, labels).

    forward(student_logits, teacher_logits, labels=None): logits [..., C] (flattened to [N, C]),
    labels [...] integer with ``ignore_index`` marking rows without a label; ``labels=None``
    leaves only the KL term (every row ignored for CE). ``"mean"`` averages the KL term over
    all rows and the CE term over labelled rows (see ``kernelflow.ops.distill``). The loss is
    float32; the student gradient is computed during forward, so backward is one multiply.
    The teacher logits are treated as constants.
    """

    def __init__(self, temperature: float = 2.0, alpha: float = 0.5, reduction: str = "mean",
                 ignore_index: int = -100, backend: str = "auto") -> None:
        super().__init__()
        if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
                or not math.isfinite(float(temperature)) or not temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.reduction = reduction
        self.ignore_index = int(ignore_index)
        self.backend = backend

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(student_logits, torch.Tensor):
            raise TypeError(f"student_logits must be a torch.Tensor, got {type(student_logits).__name__}")
        if student_logits.dim() < 1:
            raise ValueError("student_logits must have a class dimension")
        if not isinstance(teacher_logits, torch.Tensor):
            raise TypeError(f"teacher_logits must be a torch.Tensor, got {type(teacher_logits).__name__}")
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(f"teacher_logits must have the shape of student_logits {tuple(student_logits.shape)}, "
                             f"got {tuple(teacher_logits.shape)}")
        lead = student_logits.shape[:-1]
        s = student_logits.reshape(-1, student_logits.shape[-1])
        t = teacher_logits.reshape(-1, teacher_logits.shape[-1]) if isinstance(teacher_logits, torch.Tensor) else teacher_logits
        if labels is None:
            y = torch.full((s.shape[0],), self.ignore_index, dtype=torch.int64, device=s.device)
        elif isinstance(labels, torch.Tensor):
            y = labels.reshape(-1)
        else:
            raise TypeError(f"labels must be a torch.Tensor or None, got {type(labels).__name__}")
        out = distill_loss(s, t, y, self.temperature, self.alpha, self.reduction, self.ignore_index,
                           backend=self.backend)
        return out.reshape(lead) if self.reduction == "none" else out

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, alpha={self.alpha}, reduction={self.reduction!r}, "
                f"ignore_index={self.ignore_index}, backend={self.backend!r}")
