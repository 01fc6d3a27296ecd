"""Training helpers for tabular PyTorch models: ``fit`` and device-side ``metrics``."""

from kernelflow.train import metrics
from kernelflow.train.history import History
from kernelflow.train.loop import fit

__all__ = ["History", "fit", "metrics"]
