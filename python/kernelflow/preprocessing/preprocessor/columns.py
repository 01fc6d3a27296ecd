"""Which columns are numeric, categorical, passthrough or dropped, and reading them: any table
(pandas, pyarrow, polars, numpy, torch) becomes a pandas DataFrame with unique str-able names, and
the numeric columns one float32 / float64 host block."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from kernelflow._array import pyarrow_to_pandas


def as_frame(X: Any):
    """X as a pandas DataFrame with unique column names (after str(), the names the fitted state
    keeps), plus whether X had names. Object columns that hold only numbers become numeric
    (numbers stored as objects, e.g. ``df.to_numpy()`` of a mixed frame, are numbers)."""
    import pandas as pd

    X = pyarrow_to_pandas(X)
    if type(X).__module__.split(".")[0] == "polars":
        X = X.to_pandas()
    named = isinstance(X, pd.DataFrame)
    if not named:
        if isinstance(X, torch.Tensor):
            if X.is_complex():
                raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
            X = X.detach().cpu().numpy()
        elif isinstance(X, (str, bytes, dict)) or X is None:
            raise TypeError(f"X must be a 2-D array-like or a DataFrame, got {type(X).__name__}")
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        if X.dtype.kind == "c":
            raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
        X = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    names = [str(c) for c in X.columns]
    if len(set(names)) != len(names):
        seen, dup = set(), []
        for c, n in zip(X.columns, names):
            if n in seen:
                dup.append(c)
            seen.add(n)
        same = [c for c in X.columns if str(c) in {str(d) for d in dup}]
        raise ValueError(f"X has duplicate column names {same[:10]!r} (compared as str, the names the fitted "
                         "state keeps); rename them")
    obj = [c for c in X.columns if X[c].dtype == object]
    if obj:
        inferred = X[obj].infer_objects()
        num = [c for c in obj if pd.api.types.is_numeric_dtype(inferred[c]) and not pd.api.types.is_bool_dtype(inferred[c])]
        if num:
            X = X.copy(deep=False)
            for c in num:
                X[c] = inferred[c]
    return X, named


def frame_names(df) -> dict:
    """str(name) -> the frame's own column label (unique by as_frame)."""
    return {str(c): c for c in df.columns}


def select(df, spec, auto_mask, name) -> list:
    """The columns ``spec`` names ("auto": those of ``auto_mask``; names, or indices for arrays)."""
    cols = list(df.columns)
    if isinstance(spec, str) and spec == "auto":
        return [c for c, m in zip(cols, auto_mask) if m]
    if isinstance(spec, (str, bytes, dict)):
        raise TypeError(f"{name} must be 'auto' or a list of column names / indices, got {spec!r}")
    try:
        spec = list(spec)
    except TypeError:
        raise TypeError(f"{name} must be 'auto' or a list of column names / indices, got {spec!r}") from None
    colset = set(cols)
    out = []
    for c in spec:
        try:
            hash(c)
        except TypeError:
            raise TypeError(f"{name}: column {c!r} is not a column name or index") from None
        if isinstance(c, (numbers.Integral, np.integer)) and not isinstance(c, (bool, np.bool_)) and c not in colset:
            if not 0 <= c < len(cols):
                raise ValueError(f"{name}: column index {c} out of range for {len(cols)} columns")
            c = cols[c]
        if c not in colset:
            raise ValueError(f"{name}: column {c!r} is not in the input (columns: {cols[:20]})")
        out.append(c)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} names a column more than once: {spec!r}")
    return out


def split_columns(df, numeric, categorical, passthrough, drop) -> tuple[list, list, list]:
    """(numeric, categorical, passthrough) column labels of df for the Preprocessor's parameters."""
    import pandas as pd

    is_num = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    pas = select(df, passthrough, [], "passthrough")
    explicit = set(pas) | set(select(df, drop, [], "drop"))
    num_auto = isinstance(numeric, str) and numeric == "auto"
    cat_auto = isinstance(categorical, str) and categorical == "auto"
    num = select(df, numeric, is_num, "numeric")
    cat = select(df, categorical, [not m for m in is_num], "categorical")
    if not num_auto and not cat_auto:
        both = set(num) & set(cat)
        if both:
            raise ValueError(f"columns {sorted(map(str, both))} are both numeric and categorical")
    # a column named explicitly wins over the automatic choice of the other kind
    if num_auto and not cat_auto:
        cat_set = set(cat)
        num = [c for c in num if c not in cat_set]
    elif cat_auto:
        num_set = set(num)
        cat = [c for c in cat if c not in num_set]
    num = [c for c in num if c not in explicit]
    cat = [c for c in cat if c not in explicit]
    for c in num:
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise ValueError(f"numeric column {c!r} has non-numeric dtype {df[c].dtype}")
    return num, cat, pas


def numeric_block(df, cols) -> torch.Tensor:
    """[N, len(cols)] host tensor: float32 when every column is float32, else float64 (pandas
    extension dtypes read through their numpy dtype, pd.NA as NaN)."""
    if not cols:
        return torch.empty((len(df), 0), dtype=torch.float64)
    import pandas as pd

    block = df[cols]
    dts = {np.dtype(getattr(t, "numpy_dtype", t)) if not isinstance(t, pd.CategoricalDtype) else np.dtype(object)
           for t in block.dtypes}
    dt = np.float32 if dts and all(t == np.float32 for t in dts) else np.float64
    try:
        arr = block.to_numpy(dtype=dt, na_value=np.nan)
    except (TypeError, ValueError) as e:
        bad = [c for c in cols if not pd.api.types.is_numeric_dtype(df[c])]
        raise ValueError(f"numeric columns {bad[:10] or cols[:10]} cannot be read as numbers ({e})") from None
    return torch.from_numpy(np.ascontiguousarray(arr))
