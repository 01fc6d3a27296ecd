"""Knowledge distillation: a fused loss module and a teacher -> student training helper.

``DistillationLoss`` is a drop-in loss whose forward pass computes the loss and the gradient for
the student logits in one kernel (``kernelflow.ops.distill``); ``Distiller`` wraps a frozen
teacher and a student for one-call training steps or for use inside an existing training loop,
optionally matching intermediate features through learned projections.
"""

from kernelflow.distill.distiller import Distiller
from kernelflow.distill.loss import DistillationLoss

__all__ = ["DistillationLoss", "Distiller"]
