"""Categorical columns: dictionary encoding to int32 codes, integer categories on the device, and
scikit-learn's infrequent-category rules.

Code convention (shared by every categorical op, see ``kernelflow.ops.onehot``):

    code >= 0   index of the value in the column's sorted categories
    code == -1  MISSING   (None, NaN, pd.NA, NaT, or an integer equal to ``missing_value``)
    code <= -2  UNKNOWN   (a value not among the categories; codes >= the category count are
                           treated as unknown by the kernels too)

Categories are sorted ascending, like scikit-learn's ``OneHotEncoder.categories_`` /
``OrdinalEncoder.categories_`` (``np.unique`` order); the missing value is not a category here:
layouts append it as the last category when it was seen during fit, as scikit-learn does.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch

MISSING = -1
UNKNOWN = -2


class EncodedColumn(NamedTuple):
    """Result of :func:`encode_strings`."""

    codes: np.ndarray  # [N] int32, MISSING / UNKNOWN as above
    categories: np.ndarray  # [K] object (or the column's dtype), sorted ascending
    counts: np.ndarray  # [K] int64, occurrences of each category in the column
    n_missing: int  # number of missing values in the column


def _host_values(column: Any) -> Any:
    """A 1-D host column as something pd.factorize takes without copying: a numpy array, or a
    pandas Series for pandas / pyarrow / polars input (dictionary arrays become categoricals)."""
    mod = type(column).__module__.split(".")[0]
    if mod == "pyarrow":
        import pyarrow as pa  # noqa: PLC0415

        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        # a dictionary array becomes a pandas categorical (codes and dictionary, no decoding)
        return pd.Series(column.to_pandas())
    if mod == "polars":
        return column.to_pandas()
    if isinstance(column, (pd.Series, pd.Categorical, pd.Index)):
        values = pd.Series(column) if not isinstance(column, pd.Series) else column
    else:
        # numpy stays numpy: a Series would re-infer object strings (slow in pandas 3)
        values = np.asarray(column, dtype=object if not isinstance(column, np.ndarray) else None)
    if values.ndim != 1:
        raise ValueError(f"column must be 1-D, got shape {values.shape}")
    return values


def encode_strings(column: Any, categories: Sequence | np.ndarray | None = None) -> EncodedColumn:
    """Dictionary-encode a host column (str / object / pandas categorical / pyarrow array,
    dictionary arrays included) to int32 codes with pandas, no Python loop per value.

    categories=None (fit): the categories are the column's distinct non-missing values, sorted
    ascending (scikit-learn's ``categories_`` order; values must be mutually comparable), and every
    code is a category index or MISSING (-1).
    categories given (transform): codes index into them (they must be unique; they are used as
    given, so pass the sorted fitted categories), values not among them get UNKNOWN (-2).
    counts are the occurrences of each category in this column.

    One hash pass over the values (``pd.factorize``, or a categorical's own codes) gives raw codes
    into the column's distinct values; only those few distinct values are then sorted or looked up
    among ``categories``, and a lookup table maps the raw codes.
    """
    values = _host_values(column)
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        raw = np.asarray(values.array.codes, dtype=np.int64)
        distinct = np.asarray(values.array.categories, dtype=object)
    else:
        raw, distinct = pd.factorize(values, sort=False, use_na_sentinel=True)
        raw = np.asarray(raw, dtype=np.int64)
        distinct = np.asarray(distinct, dtype=object)
    if categories is None:
        # observed values only, sorted (a categorical's declared order and unused categories are ignored)
        seen = np.bincount(raw[raw >= 0], minlength=len(distinct)) > 0
        pos, uniques = pd.factorize(distinct[seen], sort=True)
        uniques = np.asarray(uniques, dtype=object)
        lut = np.full(len(distinct), UNKNOWN, dtype=np.int64)
        lut[seen] = pos
    else:
        uniques = np.asarray(categories, dtype=object)
        index = pd.Index(uniques, dtype=object)
        if not index.is_unique:
            raise ValueError("categories must be unique")
        lut = np.asarray(index.get_indexer(pd.Index(distinct, dtype=object)), dtype=np.int64)
        lut[lut < 0] = UNKNOWN
    codes = np.append(lut, MISSING)[raw]  # raw == -1 (missing) picks the trailing MISSING entry
    codes32 = codes.astype(np.int32)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques)).astype(np.int64)
    return EncodedColumn(codes32, uniques, counts, int(np.count_nonzero(raw < 0)))


def _check_int_tensor(x: Any, arg: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{arg} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64):
        raise TypeError(f"{arg} must have an integer dtype, got {x.dtype}")
    if x.dim() not in (1, 2):
        raise ValueError(f"{arg} must be 1-D [N] or 2-D [N, F], got shape {tuple(x.shape)}")
    return x


def integer_categories(x: torch.Tensor, missing_value: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per column of x [N] or [N, F] (integer, any device): (sorted distinct values [K], counts [K]
    int64), computed on x's device. Values equal to ``missing_value`` are left out (they encode as
    MISSING in :func:`map_codes`). A 1-D x gives a one-element list."""
    x = _check_int_tensor(x, "x")
    cols = x.unsqueeze(1) if x.dim() == 1 else x
    out = []
    for j in range(cols.shape[1]):
        c = cols[:, j]
        if missing_value is not None:
            c = c[c != missing_value]
        vals, counts = torch.unique(c, sorted=True, return_counts=True)
        out.append((vals, counts.to(torch.int64)))
    return out


def map_codes(x: torch.Tensor, categories: Sequence[torch.Tensor], missing_value: int | None = None) -> torch.Tensor:
    """Map integer values x [N] or [N, F] to int32 codes of the same shape on x's device with
    ``torch.searchsorted``: the index of the value in ``categories[j]`` (sorted ascending, as
    returned by :func:`integer_categories`), MISSING (-1) where x == missing_value, UNKNOWN (-2)
    for any other value not among the categories."""
    x = _check_int_tensor(x, "x")
    cols = x.unsqueeze(1) if x.dim() == 1 else x
    if len(categories) != cols.shape[1]:
        raise ValueError(f"categories must have one entry per column ({cols.shape[1]}), got {len(categories)}")
    codes = torch.empty(cols.shape, dtype=torch.int32, device=x.device)
    for j, cats in enumerate(categories):
        cats = torch.as_tensor(cats, device=x.device)
        if cats.dim() != 1:
            raise ValueError(f"categories[{j}] must be 1-D")
        if cats.numel() > 1 and not bool((cats[1:] > cats[:-1]).all()):
            raise ValueError(f"categories[{j}] must be sorted ascending and unique")
        c = cols[:, j]
        if cats.numel() == 0:
            code = torch.full_like(c, UNKNOWN, dtype=torch.int64)
        else:
            cats = cats.to(torch.int64)
            c64 = c.to(torch.int64).contiguous()
            pos = torch.searchsorted(cats, c64).clamp_max(cats.numel() - 1)
            code = torch.where(cats[pos] == c64, pos, torch.full_like(pos, UNKNOWN))
        if missing_value is not None:
            code = torch.where(c == missing_value, torch.full_like(code, MISSING), code)
        codes[:, j] = code.to(torch.int32)
    return codes.squeeze(1) if x.dim() == 1 else codes


def infrequent_mask(counts: Any, n_samples: int, min_frequency: int | float | None = None,
                    max_categories: int | None = None) -> np.ndarray:
    """Which categories are infrequent, exactly as scikit-learn's ``_identify_infrequent``
    (OneHotEncoder / OrdinalEncoder, 1.1+): below ``min_frequency`` (an int count >= 1, or a float
    fraction of ``n_samples`` in (0, 1)), then, if more than ``max_categories - 1`` frequent ones remain
    (one output is kept for the infrequent group), all but the ``max_categories - 1`` most frequent
    are infrequent, ties broken by a stable sort of counts (among equal counts, the earlier
    category is the infrequent one). ``max_categories=1`` makes all infrequent.
    Returns a bool array [K]."""
    counts = np.asarray(counts.cpu() if isinstance(counts, torch.Tensor) else counts, dtype=np.int64)
    if counts.ndim != 1:
        raise ValueError("counts must be 1-D")
    if min_frequency is not None:
        if isinstance(min_frequency, numbers.Integral) and not isinstance(min_frequency, bool):
            if min_frequency < 1:
                raise ValueError(f"min_frequency must be an int >= 1 or a float in (0, 1), got {min_frequency}")
            mask = counts < min_frequency
        elif isinstance(min_frequency, numbers.Real) and 0.0 < float(min_frequency) < 1.0:
            mask = counts < n_samples * float(min_frequency)
        else:
            raise ValueError(f"min_frequency must be an int >= 1 or a float in (0, 1), got {min_frequency!r}")
    else:
        mask = np.zeros(counts.shape[0], dtype=bool)
    if max_categories is not None:
        if not isinstance(max_categories, numbers.Integral) or max_categories < 1:
            raise ValueError(f"max_categories must be an int >= 1, got {max_categories!r}")
        if max_categories < counts.size - mask.sum() + 1:
            keep = int(max_categories) - 1
            if keep == 0:
                mask[:] = True
            else:
                mask[np.argsort(counts, kind="mergesort")[:-keep]] = True
    return mask


def infrequent_mapping(mask: np.ndarray) -> np.ndarray | None:
    """Code -> grouped index for an infrequent ``mask`` [K]: frequent categories keep their order
    (0..n_frequent-1), every infrequent one maps to n_frequent (the last, "infrequent" output).
    None when no category is infrequent (scikit-learn's ``_default_to_infrequent_mappings``)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    mapping = np.empty(mask.size, dtype=np.int64)
    n_freq = int((~mask).sum())
    mapping[~mask] = np.arange(n_freq)
    mapping[mask] = n_freq
    return mapping
