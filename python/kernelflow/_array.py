"""Array interchange: whatever the user passes becomes a torch tensor (zero copy where the
layout allows), kernels receive (pointer, shape, strides, dtype) descriptors, and results go
back in the kind the user passed (numpy in, numpy out; torch in, torch out; CuPy in, CuPy out)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from kernelflow._dtypes import CODES as DTYPE_CODES, FLOATS, as_dtype


def mat(t: torch.Tensor) -> tuple[int, int, int, int, int, int]:
    """(data_ptr, rows, cols, row_stride, col_stride, dtype_code) of a 2-D tensor [rows, cols]."""
    if t.dim() != 2:
        raise ValueError(f"expected a 2-D tensor, got shape {tuple(t.shape)}")
    if t.dtype not in DTYPE_CODES:
        raise TypeError(f"tensor of shape {tuple(t.shape)}: unsupported dtype {t.dtype} (kernels take float32, float64, "
                        "float16, bfloat16, int8, uint8, int32, int64)")
    rows, cols = t.shape
    # a size-1 dimension's stride is meaningless (torch may report 0 for expanded tensors): give
    # it the value a contiguous tensor would have so kernels' layout checks see the real layout
    rs = t.stride(0) if rows > 1 else max(cols * (t.stride(1) if cols > 1 else 1), 1)
    cs = t.stride(1) if cols > 1 else 1
    return (t.data_ptr(), rows, cols, rs, cs, DTYPE_CODES[t.dtype])


def out_dtype(dtype: Any, arg: str = "dtype") -> torch.dtype:
    """A float output dtype (float32, float64, float16, bfloat16) from its name, torch or numpy dtype."""
    return as_dtype(dtype, FLOATS, arg)


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


def _extent(t: torch.Tensor) -> tuple[int, int]:
    """[first, last] byte addresses touched by t (any strides, including negative)."""
    lo = hi = t.data_ptr()
    for n, s in zip(t.shape, t.stride()):
        d = (n - 1) * s * t.element_size()
        lo, hi = (lo + d, hi) if d < 0 else (lo, hi + d)
    return lo, hi + t.element_size() - 1


def overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether a and b may share memory (conservative: their address ranges intersect)."""
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    (a0, a1), (b0, b1) = _extent(a), _extent(b)
    return a0 <= b1 and b0 <= a1


def check_out(out: Any, shape: tuple, device: torch.device, dtypes: tuple, arg: str = "out") -> None:
    """The contract of a caller-provided output matrix: a torch tensor of ``shape`` on ``device``
    with one of ``dtypes``, unit column stride and rows that do not overlap one another (a
    stride-0 or overlapping ``out`` would make later writes clobber earlier ones)."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{arg} must be a torch.Tensor, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{arg} must have shape {tuple(shape)}, got {tuple(out.shape)}")
    if out.device != torch.device(device):
        raise ValueError(f"{arg} is on {out.device}, expected {device}")
    if out.dtype not in dtypes:
        raise TypeError(f"{arg} must have dtype {' / '.join(str(d).replace('torch.', '') for d in dtypes)}, got {out.dtype}")
    if out.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"{arg} requires grad: an in-place output cannot be differentiated")
    if out.numel() == 0:
        return
    rows, cols = out.shape[0], out.shape[-1]
    if cols > 1 and out.stride(-1) != 1:
        raise ValueError(f"{arg} must have unit column stride, got column stride {out.stride(-1)}")
    if rows > 1 and out.stride(0) < cols:
        raise ValueError(f"{arg} rows overlap (row stride {out.stride(0)} < {cols} columns): "
                         f"each row needs its own memory")


def writable_numpy_out(out: Any, arg: str = "out") -> torch.Tensor:
    """A numpy array or torch tensor given as an output buffer, as a torch view; a read-only
    numpy array is refused (torch would write through it regardless)."""
    if isinstance(out, np.ndarray):
        if not out.flags.writeable:
            raise ValueError(f"{arg} is a read-only numpy array")
        if any(s < 0 for s in out.strides):
            raise ValueError(f"{arg} has negative strides")
        if out.dtype.kind != "f":
            raise TypeError(f"{arg} must be a float array, got dtype {out.dtype}")
        return torch.from_numpy(out)
    if isinstance(out, torch.Tensor):
        return out
    raise TypeError(f"{arg} must be a numpy array or a torch tensor, got {type(out).__name__}")


def detach_input(X: Any) -> Any:
    """Inputs of estimators and ops that are not differentiated: a torch tensor that requires
    grad is used through its detached view (no copy); anything else is returned unchanged."""
    if isinstance(X, torch.Tensor) and X.requires_grad:
        return X.detach()
    return X
