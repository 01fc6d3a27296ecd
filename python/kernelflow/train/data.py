"""What ``fit`` and ``Distiller.fit`` accept as inputs and labels, turned into device-ready tensors.

Inputs (``X``):
- a tensor or numpy array [N, ...]: the model is called as ``model(X)``;
- a tuple / list of blocks, e.g. ``(num, cat)`` or ``(num, cat, passthrough)`` as
  ``Preprocessor.inputs`` returns them: the model is called as ``model(num, cat, ...)`` (a
  ``None`` block, such as an absent passthrough, is passed through as None);
- a table (pandas / polars / pyarrow) together with a fitted ``preprocessor``: it is transformed
  once by the fused kernel and the model is called on the [N, W] matrix, as it would be on
  ``preprocessor.transform(df)``.

Labels (``y``): numbers (integer / bool = classification, floating = regression), or strings /
pandas categoricals / objects, which are encoded as indices into ``classes`` (sorted unique
training labels unless given); the classes are returned so they can be saved with the model.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["as_inputs", "as_labels", "is_table", "n_rows"]


def is_table(x: Any) -> bool:
    """A pandas / polars DataFrame or a pyarrow Table / RecordBatch (never imports them)."""
    mod = type(x).__module__.split(".")[0]
    return mod in ("pandas", "polars", "pyarrow") and hasattr(x, "columns") and not _is_series(x)


def _is_series(x: Any) -> bool:
    mod, n = type(x).__module__.split(".")[0], type(x).__name__
    return (mod in ("pandas", "polars") and n == "Series") or (mod == "pyarrow" and n.endswith("Array"))


def _tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        if x.dtype == object or x.dtype.kind in "USV":
            raise TypeError(f"{name} must hold numbers, got a numpy array of dtype {x.dtype}")
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def as_inputs(X: Any, name: str, preprocessor: Any = None) -> tuple[torch.Tensor | None, ...]:
    """X as a tuple of host or device tensors sharing the leading (row) dimension."""
    if is_table(X):
        if preprocessor is None:
            raise TypeError(f"{name} is a {type(X).__name__}: pass a fitted kernelflow.Preprocessor as "
                            "preprocessor= (the model then gets preprocessor.transform(table)), or pass "
                            "preprocessor.inputs(table) as (num, cat[, passthrough]) blocks")
        if not hasattr(preprocessor, "n_features_out_") or not hasattr(preprocessor, "transform"):
            raise TypeError(f"preprocessor must be a fitted kernelflow.Preprocessor, got {type(preprocessor).__name__}")
        out = preprocessor.transform(X)
        return (out.detach() if isinstance(out, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(out)),)
    if isinstance(X, (tuple, list)):
        if len(X) == 0:
            raise ValueError(f"{name} is an empty tuple: pass (num, cat[, passthrough]) blocks")
        blocks = tuple(None if b is None else _tensor(b, f"{name}[{i}]") for i, b in enumerate(X))
        while blocks and blocks[-1] is None:  # (num, cat, None) is (num, cat): an absent passthrough
            blocks = blocks[:-1]
        present = [b for b in blocks if b is not None]
        if not present:
            raise ValueError(f"{name}: every block is None")
        for i, b in enumerate(blocks):
            if b is not None and b.dim() == 0:
                raise ValueError(f"{name}[{i}] needs a leading sample dimension, got a scalar")
        rows = {b.shape[0] for b in present}
        if len(rows) > 1:
            raise ValueError(f"{name}: the input blocks have different numbers of rows: "
                             f"{[None if b is None else b.shape[0] for b in blocks]}")
        return blocks
    return (_tensor(X, name),)


def n_rows(xs: Sequence[torch.Tensor | None]) -> int:
    return next(b.shape[0] for b in xs if b is not None)


def _label_values(y: Any) -> tuple[np.ndarray | None, torch.Tensor | None]:
    """(non-numeric labels as a numpy object/str array, or None; numeric labels as a tensor, or None)."""
    if isinstance(y, torch.Tensor):
        return None, y.detach()
    if _is_series(y):
        mod = type(y).__module__.split(".")[0]
        if mod == "pandas":
            import pandas as pd

            if isinstance(y.dtype, pd.CategoricalDtype) or not (pd.api.types.is_numeric_dtype(y)
                                                                 or pd.api.types.is_bool_dtype(y)):
                return np.asarray(y.astype(object).to_numpy(), dtype=object), None
            if y.isna().any() and not pd.api.types.is_float_dtype(y):
                raise ValueError("labels hold missing values")
            return None, torch.from_numpy(np.array(y.to_numpy(), copy=True))  # pandas may hand out read-only views
        y = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y)
    if isinstance(y, (list, tuple)):
        y = np.asarray(y, dtype=object if any(isinstance(v, str) for v in y) else None)
    if isinstance(y, np.ndarray):
        if y.dtype == object or y.dtype.kind in "USV":
            return y.astype(object), None
        return None, torch.from_numpy(np.ascontiguousarray(y))
    raise TypeError(f"labels must be a tensor, numpy array, pandas / polars Series or list, got {type(y).__name__}")


def as_labels(y: Any, name: str, classes: Sequence[Any] | None = None) -> tuple[torch.Tensor, list | None]:
    """(labels or targets as a tensor, the classes when the labels were encoded, else None).

    Strings / categoricals / objects become int64 indices into ``classes`` (given, or the sorted
    unique values of ``y``); a label that is not among ``classes`` is a ValueError naming it.
    Numeric labels pass unchanged unless ``classes`` is given, when they are encoded the same way.
    """
    obj, t = _label_values(y)
    if obj is not None:
        if obj.ndim != 1:
            raise ValueError(f"{name}: string labels must be 1-D, got shape {obj.shape}")
        missing = np.array([v is None or (isinstance(v, float) and v != v) for v in obj], dtype=bool)
        if missing.any():
            raise ValueError(f"{name}: {int(missing.sum())} labels are missing (None / NaN); drop those rows")
        values = obj
    elif classes is not None:
        values = t.cpu().numpy()
    else:
        return t, None
    if classes is None:
        try:
            classes = sorted(set(values.tolist()))
        except TypeError as e:
            raise TypeError(f"{name}: labels of mixed types cannot be ordered: {e}") from None
    cls = list(classes)
    lookup = {c: i for i, c in enumerate(cls)}
    if len(lookup) != len(cls):
        raise ValueError("classes must not repeat")
    try:
        codes = np.fromiter((lookup[v] for v in values.tolist()), dtype=np.int64, count=len(values))
    except KeyError as e:
        raise ValueError(f"{name}: label {e.args[0]!r} is not one of the classes {cls[:20]}") from None
    return torch.from_numpy(codes), cls
