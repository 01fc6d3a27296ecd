"""Drift of new data against the training data of a fitted Preprocessor, offline.

``DriftReference.fit(pre, X_train)`` profiles the training data as the pipeline sees it (the
``Preprocessor.inputs`` blocks: numeric values before imputation, category codes after it);
``DriftMonitor(pre, reference).update(batch)`` accumulates the same statistics of new data,
chunk by chunk, and ``report()`` gives the drift measures per column. The statistics and the
measures are ``drift_stats``'s, the code the served Triton encode step runs.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from kernelflow.monitor import drift_stats as ds

REPORT_COLUMNS = ("column", "kind", "rows", "psi", "mean_shift", "missing_rate", "unknown_rate",
                  "reference_missing_rate", "mean", "reference_mean")


def _fitted(pre):
    if not hasattr(pre, "n_features_out_") or not hasattr(pre, "inputs"):
        raise TypeError(f"preprocessor must be a fitted kernelflow.Preprocessor, got {type(pre).__name__}")
    return pre


def _frame(pre, X):
    from kernelflow.preprocessing.preprocessor import _as_frame

    df, _ = _as_frame(X)
    return df


def _blocks(pre, X):
    """(numeric+passthrough [N, F] float32, codes [N, C] int64, categorical missing [N, C] bool)."""
    df = _frame(pre, X)
    num, cat, pas = pre.inputs(df)
    num = num.numpy()
    if pas is not None:
        num = np.concatenate([num, pas.numpy()], 1)
    cols = [pre._orig_name(df, c) for c in pre.categorical_columns_]
    missing = np.stack([df[c].isna().to_numpy() for c in cols], 1) if cols else np.zeros((len(df), 0), bool)
    return num, cat.numpy(), missing


def _num_names(pre) -> list[str]:
    return list(pre.numeric_columns_) + list(pre.passthrough_columns_)


class DriftReference:
    """The training data's profile: per numeric column the fit statistics and quantile-bin counts,
    per categorical column the category counts and the missing count. Saved as JSON."""

    def __init__(self, doc: dict):
        self.doc = ds.check_reference(doc)

    @classmethod
    def fit(cls, preprocessor, X, bins: int = 10) -> "DriftReference":
        """Profile the training table X (any table type ``Preprocessor`` takes) with ``bins``
        quantile bins per numeric column."""
        pre = _fitted(preprocessor)
        if not isinstance(bins, int) or isinstance(bins, bool) or not 2 <= bins <= 1000:
            raise ValueError(f"bins must be an int in 2..1000, got {bins!r}")
        num, codes, missing = _blocks(pre, X)
        if num.shape[0] == 0:
            raise ValueError("X must have at least one row to profile")
        stats = ds.column_stats(num)
        numeric = []
        for j, name in enumerate(_num_names(pre)):
            edges = ds.quantile_edges(num[:, j], bins)
            numeric.append({"name": name, "stats": stats[:, j].tolist(), "edges": edges.tolist(),
                            "bin_counts": ds.bin_counts(num[:, j], edges).tolist()})
        categorical = []
        for j, p in enumerate(pre._cat_plans):
            k = len(p.categories)
            c = codes[:, j]
            counts = np.bincount(c[(c >= 0) & (c < k)], minlength=k)
            categorical.append({"name": p.name, "n_categories": k, "counts": counts.tolist(),
                                "missing": int(missing[:, j].sum())})
        return cls({"format": ds.REFERENCE_FORMAT, "version": ds.REFERENCE_VERSION, "rows": int(num.shape[0]),
                    "bins": bins, "numeric": numeric, "categorical": categorical})

    @classmethod
    def from_preprocessor(cls, preprocessor) -> "DriftReference":
        """What the fitted preprocessor alone knows: its categories' fit counts (missing values
        counted in the imputed category). Numeric measures and reference missing rates are NaN:
        profile the training data with ``fit`` to have them."""
        pre = _fitted(preprocessor)
        numeric = [{"name": n, "stats": None, "edges": [], "bin_counts": [0]} for n in _num_names(pre)]
        categorical = []
        for p in pre._cat_plans:
            k = len(p.categories)
            counts = [0] * k if p.counts is None else [int(n) for n in p.counts]
            categorical.append({"name": p.name, "n_categories": k, "counts": counts, "missing": None})
        rows = max((sum(c["counts"]) for c in categorical), default=0)
        return cls({"format": ds.REFERENCE_FORMAT, "version": ds.REFERENCE_VERSION, "rows": int(rows),
                    "bins": None, "numeric": numeric, "categorical": categorical})

    def to_dict(self) -> dict:
        return json.loads(json.dumps(self.doc))

    def save(self, path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.doc, f)

    @classmethod
    def load(cls, path) -> "DriftReference":
        with open(path, encoding="utf-8") as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{os.fspath(path)!r} is not a drift reference (invalid JSON: {e})") from None
        return cls(doc)

    def check_matches(self, preprocessor) -> None:
        pre = _fitted(preprocessor)
        names = [c["name"] for c in self.doc["numeric"]]
        cats = [(c["name"], c["n_categories"]) for c in self.doc["categorical"]]
        if names != _num_names(pre) or cats != [(p.name, len(p.categories)) for p in pre._cat_plans]:
            raise ValueError("reference does not match the preprocessor's columns / categories "
                             f"(reference numeric {names[:5]}..., preprocessor {_num_names(pre)[:5]}...)")


def as_reference(preprocessor, reference: Any) -> DriftReference:
    """reference: a DriftReference, its dict, a path to its JSON, a training table, or None
    (``DriftReference.from_preprocessor``)."""
    if reference is None:
        return DriftReference.from_preprocessor(preprocessor)
    if isinstance(reference, DriftReference):
        ref = reference
    elif isinstance(reference, dict):
        ref = DriftReference(reference)
    elif isinstance(reference, (str, os.PathLike)):
        ref = DriftReference.load(reference)
    else:
        ref = DriftReference.fit(preprocessor, reference)
    ref.check_matches(preprocessor)
    return ref


class DriftMonitor:
    """Accumulates drift statistics of new data, chunk by chunk, against a training profile.

    Parameters
    ----------
    preprocessor : the fitted ``kernelflow.Preprocessor`` the data is served through.
    reference : see ``as_reference``; the training table itself works (profiled here).
    """

    def __init__(self, preprocessor, reference=None):
        self.preprocessor = _fitted(preprocessor)
        self.reference = as_reference(preprocessor, reference)
        self.state = ds.DriftState.for_reference(self.reference.doc)

    def update(self, batch) -> "DriftMonitor":
        """Add a batch (any table type the preprocessor takes; column names as in fit)."""
        num, codes, missing = _blocks(self.preprocessor, batch)
        self.state.update(num, codes, missing)
        return self

    def reset(self) -> "DriftMonitor":
        self.state = ds.DriftState.for_reference(self.reference.doc)
        return self

    def measures(self) -> list[dict]:
        return self.state.measures(self.reference.doc)

    def report(self):
        """pandas DataFrame, one row per column (``REPORT_COLUMNS``)."""
        import pandas as pd

        return pd.DataFrame(self.measures(), columns=list(REPORT_COLUMNS))

    def to_json(self, **kw) -> str:
        """The report as JSON (NaN / inf written as null, so any JSON reader takes it)."""
        clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in m.items()}
                 for m in self.measures()]
        return json.dumps({"rows": self.state.rows, "columns": clean}, **kw)
