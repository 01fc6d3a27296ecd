"""Load, check and split: the table from a file or the embedded dataset, the target and its task,
the data errors reported before any work (missing target column, constant target, too few rows,
non-numeric regression target) and the seeded stratified train / validation / test split."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kernelflow.workflow.config import ConfigError, WorkflowConfig

_READERS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
            ".feather": "feather", ".arrow": "feather", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".xlsx": "excel", ".xls": "excel"}


@dataclass
class Table:
    """The loaded table: features (pandas), target, task and what the manifest records."""

    X: Any  # pandas DataFrame of the feature columns
    y: np.ndarray  # [N] labels (object / int) or float64 targets
    target: str
    task: str  # classification | regression
    classes: list | None  # sorted labels (classification)
    source: str
    sha256: str  # of the source file(s)
    rows_dropped: int = 0  # rows without a target value
    info: dict = field(default_factory=dict)


def _sha256(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def read_table(path: str):
    """A pandas DataFrame from any table file pandas / pyarrow read (kind from the extension)."""
    import pandas as pd

    if not os.path.isfile(path):
        raise ConfigError(f"config: data.path {path!r} does not exist")
    name = path.lower()
    for comp in (".gz", ".bz2", ".zip", ".xz", ".zst"):
        if name.endswith(comp):
            name = name[: -len(comp)]
    kind = _READERS.get(os.path.splitext(name)[1])
    if kind is None:
        raise ConfigError(f"config: data.path {path!r}: unknown table type; use one of "
                          f"{', '.join(sorted(set(_READERS)))} (optionally compressed)")
    try:
        if kind == "csv":
            return pd.read_csv(path)
        if kind == "tsv":
            return pd.read_csv(path, sep="\t")
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "feather":
            return pd.read_feather(path)
        if kind == "json":
            return pd.read_json(path)
        if kind == "jsonl":
            return pd.read_json(path, lines=True)
        return pd.read_excel(path)
    except ImportError as e:
        raise ConfigError(f"config: reading {path!r} needs a library that is not installed: {e}") from None
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config: data.path {path!r} could not be read: {e}") from None


def _detect_task(y, requested: str, max_classes: int, target: str) -> str:
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if requested == "regression":
        if not numeric:
            raise ConfigError(f"data: target column {target!r} has non-numeric values ({y.dtype}) but "
                              "data.task = 'regression' needs numbers")
        return "regression"
    if requested == "classification":
        return "classification"
    if not numeric:
        return "classification"
    vals = y.to_numpy()
    integral = pd.api.types.is_integer_dtype(y) or bool(np.all(np.mod(vals, 1) == 0))
    return "classification" if integral and y.nunique() <= max_classes else "regression"


def load(cfg: WorkflowConfig) -> Table:
    """The table with its target checked (ConfigError for every data error, before any work)."""
    import pandas as pd

    d = cfg.data
    if d.path is None:
        from kernelflow.workflow.datasets import TARGET, dataset_files, load_dataset

        try:
            df = load_dataset(d.dataset)
            files = dataset_files(d.dataset)
        except RuntimeError as e:
            raise ConfigError(str(e)) from None
        target = d.target or TARGET
        source = f"embedded dataset {d.dataset} ({', '.join(os.path.basename(f) for f in files)})"
    else:
        df = read_table(d.path)
        files = [d.path]
        target = d.target
        source = d.path
    if target not in df.columns:
        import difflib

        near = difflib.get_close_matches(str(target), [str(c) for c in df.columns], n=1, cutoff=0.5)
        raise ConfigError(f"data: target column {target!r} is not in the table" +
                          (f" (did you mean {near[0]!r}?)" if near else f" (columns: {list(map(str, df.columns))[:20]})"))
    missing = [c for c in d.drop_columns if c not in df.columns]
    if missing:
        raise ConfigError(f"config: data.drop_columns: column {missing[0]!r} is not in the table")
    y = df[target]
    keep = y.notna().to_numpy()
    dropped = int((~keep).sum())
    if dropped:
        df = df[keep]
        y = y[keep]
    if d.sample_rows and d.sample_rows < len(df):
        idx = np.sort(np.random.default_rng(cfg.seed).choice(len(df), d.sample_rows, replace=False))
        df, y = df.iloc[idx], y.iloc[idx]
    if len(df) == 0:
        raise ConfigError(f"data: target column {target!r} has no values")
    task = _detect_task(y, d.task, d.max_classes, target)
    if y.nunique() < 2:
        raise ConfigError(f"data: target column {target!r} is constant ({y.iloc[0]!r}): nothing to learn")
    X = df.drop(columns=[target] + list(d.drop_columns)).reset_index(drop=True)
    if X.shape[1] == 0:
        raise ConfigError(f"data: no feature columns are left besides the target {target!r}")
    num = X.select_dtypes(include="number")
    if num.shape[1]:
        bad = np.isinf(num.to_numpy(dtype=np.float64, na_value=np.nan)).any(0)
        if bad.any():
            raise ConfigError(f"data: column {str(num.columns[np.flatnonzero(bad)[0]])!r} holds infinite values: "
                              "replace them (by NaN, to be imputed) or drop the column (data.drop_columns)")
    classes = None
    if task == "classification":
        yv = y.astype(str).to_numpy(dtype=object) if not pd.api.types.is_numeric_dtype(y) else y.to_numpy()
        classes = sorted(set(yv.tolist()))
        yarr = yv
    else:
        yarr = y.to_numpy(dtype=np.float64)
        if not np.isfinite(yarr).all():
            raise ConfigError(f"data: target column {target!r} holds infinite values")
    _check_rows(len(X), yarr, task, cfg)
    return Table(X=X, y=yarr, target=target, task=task, classes=classes, source=source, sha256=_sha256(files),
                 rows_dropped=dropped, info={"rows": len(X), "columns": int(X.shape[1]),
                                             "missing_values": int(X.isna().to_numpy().sum())})


def _check_rows(n: int, y: np.ndarray, task: str, cfg: WorkflowConfig) -> None:
    s = cfg.split
    n_test, n_val = int(round(n * s.test)), int(round(n * s.validation))
    n_train = n - n_test - n_val
    if min(n_test, n_val) < 2 or n_train < 10:
        raise ConfigError(f"data: {n} rows are too few for the split (test {s.test}, validation {s.validation}): "
                          f"it gives {n_train} training, {n_val} validation and {n_test} test rows; "
                          "it needs at least 10, 2 and 2")
    if task == "classification" and s.stratify:
        import pandas as pd

        counts = np.bincount(pd.factorize(y)[0])
        if counts.min() < 3:
            raise ConfigError(f"data: a class of the target has {counts.min()} rows: stratified splitting needs "
                              "at least 3 per class (set split.stratify = false, or drop those rows)")


@dataclass
class Split:
    train: np.ndarray  # row indices
    val: np.ndarray
    test: np.ndarray


def split(table: Table, cfg: WorkflowConfig) -> Split:
    """Seeded train / validation / test row indices (stratified on the labels when asked)."""
    from sklearn.model_selection import train_test_split

    import pandas as pd

    n = len(table.y)
    idx = np.arange(n)
    strat = pd.factorize(table.y)[0] if table.task == "classification" and cfg.split.stratify else None
    rest, test = train_test_split(idx, test_size=cfg.split.test, random_state=cfg.seed, stratify=strat)
    val_frac = cfg.split.validation / (1.0 - cfg.split.test)
    train, val = train_test_split(rest, test_size=val_frac, random_state=cfg.seed + 1,
                                  stratify=None if strat is None else strat[rest])
    return Split(np.sort(train), np.sort(val), np.sort(test))


def folds(table: Table, rows: np.ndarray, k: int, cfg: WorkflowConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, validation) index pairs over ``rows`` (stratified k-fold for classification)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if table.task == "classification" and cfg.split.stratify:
        kf = StratifiedKFold(n_splits=k, shuffle=True, random_state=cfg.seed)
        import pandas as pd

        it = kf.split(rows, pd.factorize(table.y[rows])[0])
    else:
        it = KFold(n_splits=k, shuffle=True, random_state=cfg.seed).split(rows)
    return [(rows[a], rows[b]) for a, b in it]
