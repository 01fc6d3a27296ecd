"""Array interchange: whatever the user passes becomes a torch tensor (zero copy where the
layout allows), kernels receive (pointer, shape, strides, dtype) descriptors, and results go
back in the kind the user passed (numpy in, numpy out; torch in, torch out; CuPy in, CuPy out)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

# Must match kf::DType in csrc/common/array.h.
DTYPE_CODES = {
    torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3,
    torch.int8: 4, torch.uint8: 5, torch.int32: 6, torch.int64: 7,
}

OUT_DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
    torch.float32: torch.float32, torch.float64: torch.float64, torch.float16: torch.float16,
    torch.bfloat16: torch.bfloat16, np.float32: torch.float32, np.float64: torch.float64, np.float16: torch.float16,
}


def mat(t: torch.Tensor) -> tuple[int, int, int, int, int, int]:
    """(data_ptr, rows, cols, row_stride, col_stride, dtype_code) of a 2-D tensor [rows, cols]."""
    if t.dim() != 2:
        raise ValueError(f"expected a 2-D tensor, got shape {tuple(t.shape)}")
    if t.dtype not in DTYPE_CODES:
        raise TypeError(f"unsupported dtype {t.dtype}")
    rows, cols = t.shape
    # a size-1 dimension's stride is meaningless (torch may report 0 for expanded tensors): give
    # it the value a contiguous tensor would have so kernels' layout checks see the real layout
    rs = t.stride(0) if rows > 1 else max(cols * (t.stride(1) if cols > 1 else 1), 1)
    cs = t.stride(1) if cols > 1 else 1
    return (t.data_ptr(), rows, cols, rs, cs, DTYPE_CODES[t.dtype])


def out_dtype(dtype: Any, arg: str = "dtype") -> torch.dtype:
    try:
        return OUT_DTYPES[dtype if not isinstance(dtype, np.dtype) else dtype.type]
    except (KeyError, TypeError):
        raise ValueError(f"{arg} must be one of float32, float64, float16, bfloat16; got {dtype!r}") from None


def kind_of(X: Any) -> str:
    """'torch', 'cupy', or 'numpy' (everything host-side that sklearn's validation accepts)."""
    if isinstance(X, torch.Tensor):
        return "torch"
    mod = type(X).__module__.split(".")[0]
    if mod == "cupy":
        return "cupy"
    return "numpy"


def from_cupy(X: Any) -> torch.Tensor:
    return torch.from_dlpack(X)  # zero copy, same device and stream semantics


def to_cupy(t: torch.Tensor) -> Any:
    import cupy  # noqa: PLC0415

    return cupy.from_dlpack(t)


def numpy_to_tensor(X: np.ndarray) -> torch.Tensor:
    """Zero copy unless numpy's layout cannot be expressed in torch (negative strides)."""
    if any(s < 0 for s in X.strides) or not X.flags.aligned:
        X = np.ascontiguousarray(X)
    if not X.flags.writeable:  # kernels never write their inputs; torch only warns about it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(X)
    return torch.from_numpy(X)


def tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16
        raise TypeError("bfloat16 output cannot be returned as numpy; use set_output(transform='torch') or dtype='float32'")
    return t.detach().cpu().numpy()


def pyarrow_to_pandas(X: Any) -> Any:
    """pyarrow Tables / RecordBatches go through pandas (keeps column names; nulls become NaN)."""
    mod = type(X).__module__.split(".")[0]
    if mod == "pyarrow" and hasattr(X, "to_pandas"):
        return X.to_pandas()
    return X


def check_float_matrix(x: Any, arg: str = "x") -> None:
    """The op-level input contract: a 2-D float32 / float64 torch tensor (any strides)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{arg} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{arg} must be 2-D [rows, cols], got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{arg} must be float32 or float64, got {x.dtype}")
