"""Categorical columns: mergeable per-column counts (fit), the fitted plan of a column (imputed
fill, categories, output slots) built by ``kernelflow.ops``' one-hot layout and infrequent rules,
and the host lookup of category codes (transform)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kernelflow import ops
from kernelflow.ops.onehot import OneHotLayout


@dataclass
class CatPlan:
    """Fitted plan of one categorical column."""

    name: str
    categories: np.ndarray  # sorted category values (after imputation)
    slots: np.ndarray  # [n_categories] int64: output slot of each category, -1 = no column
    width: int  # output columns of this feature
    names: list = field(default_factory=list)  # output feature names (without prefix)
    infrequent: np.ndarray | None = None  # categories folded into the infrequent column
    infrequent_slot: int = -1  # output slot of the infrequent column (unknowns go there), -1 none
    fill: Any = None  # the value missing entries are imputed with
    counts: np.ndarray | None = None  # fit counts of the categories (for infrequent grouping)


def json_value(v):
    """A category value as a JSON scalar (str, int, float, bool)."""
    if isinstance(v, np.generic):
        v = v.item()
    if not isinstance(v, (str, int, float, bool)):
        raise TypeError(f"category value {v!r} of type {type(v).__name__} cannot be saved")
    return v


def column_counts(column) -> dict:
    """Mergeable statistics of one column of one chunk: its sorted distinct values, their counts
    and the number of missing values (one hash pass, ``ops.encode_strings``)."""
    enc = ops.encode_strings(column)
    return {"values": list(enc.categories), "counts": [int(n) for n in enc.counts], "missing": int(enc.n_missing)}


def merge_counts(name: str, a: dict, b: dict) -> dict:
    """The counts of two chunks of column ``name`` added, values sorted (scikit-learn's order)."""
    total = dict(zip(a["values"], a["counts"]))
    for v, n in zip(b["values"], b["counts"]):
        total[v] = total.get(v, 0) + n
    try:
        values = sorted(total)
    except TypeError as e:
        raise TypeError(f"categorical column {name!r} mixes value types that cannot be sorted ({e})") from None
    return {"values": values, "counts": [total[v] for v in values], "missing": a["missing"] + b["missing"]}


def impute_counts(name: str, cc: dict, cat_impute: str, cat_fill_value) -> tuple[Any, list, np.ndarray]:
    """(fill, categories, counts) of the column once its missing values hold the fill: the most
    frequent value (the smallest among ties, like SimpleImputer) or the constant."""
    cats, counts = list(cc["values"]), np.asarray(cc["counts"], dtype=np.int64)
    if cat_impute == "constant":
        fill = cat_fill_value
    else:
        if not cats:
            raise ValueError(f"categorical column {name!r} has no observed value to impute from")
        fill = cats[int(np.argmax(counts))]  # values are sorted: argmax takes the smallest of the ties
    if cc["missing"]:
        if fill in cats:
            counts[cats.index(fill)] += cc["missing"]
        else:
            try:
                order = sorted(cats + [fill])
            except TypeError as e:
                raise TypeError(f"categorical column {name!r}: fill value {fill!r} cannot be sorted "
                                f"with its categories ({e})") from None
            new = dict(zip(cats, counts.tolist()))
            new[fill] = cc["missing"]
            cats, counts = order, np.asarray([new[v] for v in order], dtype=np.int64)
    return fill, cats, counts


def plan_column(name: str, cc: dict, *, cat_impute: str, cat_fill_value, encode: str, min_frequency,
                max_categories, onehot_drop) -> CatPlan:
    """The plan of a column from its (merged) counts. One-hot slots, names, infrequent grouping and
    drop are ``OneHotLayout.from_categories``' (scikit-learn's OneHotEncoder rules) on the imputed
    categories; the infrequent column's slot is where that layout sends unknown values under
    handle_unknown="infrequent_if_exist"."""
    fill, cats, counts = impute_counts(name, cc, cat_impute, cat_fill_value)
    cats = np.asarray(cats, dtype=object)
    k = len(cats)
    if encode == "ordinal":
        plan = CatPlan(name, cats, np.arange(k, dtype=np.int64), 1, [name])
    else:
        lay = OneHotLayout.from_categories([cats], [counts], [0], handle_unknown="infrequent_if_exist",
                                           drop=onehot_drop, min_frequency=min_frequency,
                                           max_categories=max_categories, feature_names_in=[name])
        seg = np.asarray(lay.table[: k + 2], dtype=np.int64)  # per code the output column; -1: none
        infreq = lay.infrequent[0]
        plan = CatPlan(name, cats, seg[:k].copy(), int(lay.widths[0]), list(lay.feature_names),
                       cats[infreq] if infreq is not None else None, int(seg[k + 1]) if infreq is not None else -1)
    plan.fill, plan.counts = fill, counts
    return plan


def lookup(s, plan: CatPlan) -> np.ndarray:
    """Codes of the values of column s in plan.categories; missing -> the fill's code; unknown -> -1."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(s, from_pandas=True)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        value_set = pa.array(list(plan.categories), type=arr.type) if len(arr) else None
        idx = pc.index_in(arr, value_set=value_set) if value_set is not None else pa.array([], pa.int32())
        missing = np.asarray(arr.is_null(nan_is_null=True)) if len(arr) else np.zeros(0, bool)
        codes = np.array(idx.fill_null(-1), dtype=np.int32)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        obj = s.astype(object)
        missing = obj.isna().to_numpy()
        codes = pd.Index(plan.categories, dtype=object).get_indexer(obj).astype(np.int32)
    if missing.any():
        fill_code = int(np.flatnonzero(plan.categories == plan.fill)[0]) if np.any(plan.categories == plan.fill) else -1
        codes[missing] = fill_code
    return codes
