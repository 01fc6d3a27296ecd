"""The one dtype-name map of the package: names ("float32"), torch dtypes and numpy dtypes all
become a torch dtype through ``as_dtype``, which also checks it against what the caller accepts;
``CODES`` are the dtype codes the compiled kernels take."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# name -> torch dtype: every dtype a kernelflow kernel reads or writes
NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int8": torch.int8, "uint8": torch.uint8, "int32": torch.int32, "int64": torch.int64,
}

# Must match kf::DType in csrc/common/array.h.
CODES: dict[torch.dtype, int] = {
    torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3,
    torch.int8: 4, torch.uint8: 5, torch.int32: 6, torch.int64: 7,
}

FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)  # float outputs of the transforms
LOW_FLOATS = (torch.float32, torch.float16, torch.bfloat16)  # float outputs of the int8 and model paths


def name(dtype: torch.dtype) -> str:
    """"float32" for torch.float32."""
    return str(dtype).replace("torch.", "")


def lookup(d: Any) -> torch.dtype | None:
    """The torch dtype ``d`` names (a name, torch dtype, numpy dtype or numpy scalar type), or None."""
    if isinstance(d, torch.dtype):
        return d
    if isinstance(d, str):
        return NAMES.get(d.replace("torch.", ""))
    try:
        nd = np.dtype(d) if d is not None else None
    except TypeError:
        return None
    return None if nd is None else NAMES.get(nd.name)


def as_dtype(d: Any, allowed: tuple[torch.dtype, ...] = FLOATS, arg: str = "dtype") -> torch.dtype:
    """``d`` as a torch dtype among ``allowed``; ValueError naming ``arg`` and the allowed names otherwise."""
    dt = lookup(d)
    if dt not in allowed:
        raise ValueError(f"{arg} must be one of {', '.join(name(a) for a in allowed)}; got {d!r}")
    return dt
