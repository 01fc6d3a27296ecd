"""kernelflow ops: ``torch.library`` custom ops (``kernelflow::<name>``) with fake kernels,
autograd where gradients flow, and dispatch to the cuda / triton / cpu / torch backends.
Each family lives in its own module next to its float64 reference."""

from kernelflow.ops.stats import column_stats, column_stats_reference, merge_stats
from kernelflow.ops.transform import (
    numeric_transform,
    numeric_transform_reference,
    transform_params,
)

__all__ = [
    "column_stats", "column_stats_reference", "merge_stats",
    "numeric_transform", "numeric_transform_reference", "transform_params",
]
