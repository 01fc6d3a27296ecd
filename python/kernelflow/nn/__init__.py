"""torch.nn modules backed by kernelflow ops."""

from kernelflow.nn.int8 import Int8Linear
from kernelflow.nn.norm import LayerNorm, RMSNorm
from kernelflow.nn.patch import patch
from kernelflow.nn.preprocess import Preprocess

__all__ = ["Int8Linear", "LayerNorm", "Preprocess", "RMSNorm", "patch"]
