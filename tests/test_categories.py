"""Dictionary encoding, integer categories on the device, and scikit-learn's infrequent rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sklearn.preprocessing import OneHotEncoder

from kernelflow.ops.categories import (
    MISSING,
    UNKNOWN,
    encode_strings,
    infrequent_mapping,
    infrequent_mask,
    integer_categories,
    map_codes,
)


def _check_roundtrip(values, enc):
    """categories[codes] gives back every non-missing value; missing values get MISSING."""
    vals = np.asarray(pd.Series(values, dtype=object), dtype=object)
    miss = np.asarray(pd.isna(pd.Series(vals)), dtype=bool)
    assert enc.codes.dtype == np.int32 and enc.codes.shape == vals.shape
    assert (enc.codes[miss] == MISSING).all()
    assert (enc.codes[~miss] >= 0).all()
    assert list(enc.categories[enc.codes[~miss]]) == list(vals[~miss])
    assert enc.n_missing == int(miss.sum())
    assert enc.counts.sum() == (~miss).sum()


def _sklearn_categories(values):
    cats = OneHotEncoder(sparse_output=False).fit(np.asarray(values, dtype=object).reshape(-1, 1)).categories_[0]
    return [c for c in cats if not pd.isna(c)]


def test_object_column_with_every_missing_kind():
    col = np.array(["b", "a", None, "c", "a", np.nan, pd.NA, "b", "b"], dtype=object)
    enc = encode_strings(col)
    assert list(enc.categories) == ["a", "b", "c"]
    assert enc.codes.tolist() == [1, 0, -1, 2, 0, -1, -1, 1, 1]
    assert enc.counts.tolist() == [2, 3, 1] and enc.n_missing == 3


@pytest.mark.parametrize("kind", ["list", "numpy_str", "object", "series_string", "categorical", "arrow",
                                  "arrow_dict", "arrow_chunked"])
def test_input_kinds_match_sklearn_categories(kind):
    g = np.random.default_rng(3)
    words = np.array(["pear", "apple", "fig", "kiwi", "Zebra", "lime", "äpfel"], dtype=object)
    vals = g.choice(words, 300).astype(object)
    with_missing = kind not in ("numpy_str",)
    if with_missing:
        vals[g.random(300) < 0.1] = None
    col = {
        "list": lambda: list(vals),
        "numpy_str": lambda: vals.astype(str),
        "object": lambda: vals,
        "series_string": lambda: pd.Series(vals, dtype="string"),
        # declared categories unsorted and with an unused one: only observed, sorted ones count
        "categorical": lambda: pd.Series(pd.Categorical(vals, categories=list(words[::-1]) + ["unused"])),
        "arrow": lambda: pa.array(list(vals)),
        "arrow_dict": lambda: pa.array(list(vals)).dictionary_encode(),
        "arrow_chunked": lambda: pa.chunked_array([pa.array(list(vals[:100])), pa.array(list(vals[100:]))]),
    }[kind]()
    enc = encode_strings(col)
    _check_roundtrip(vals, enc)
    ref = vals[~pd.isna(pd.Series(vals))]
    assert list(enc.categories) == _sklearn_categories(ref)


def test_transform_with_known_categories_marks_unknown():
    enc = encode_strings(["z", "a", None, "q", "b"], categories=["a", "b", "z"])
    assert enc.codes.tolist() == [2, 0, MISSING, UNKNOWN, 1]
    assert enc.counts.tolist() == [1, 1, 1] and enc.n_missing == 1
    cat = pd.Series(pd.Categorical(["b", "x", None]))
    assert encode_strings(cat, categories=["a", "b"]).codes.tolist() == [1, UNKNOWN, MISSING]
    with pytest.raises(ValueError, match="categories must be unique"):
        encode_strings(["a"], categories=["a", "a"])


def test_empty_and_all_missing_and_2d():
    enc = encode_strings(np.array([], dtype=object))
    assert enc.codes.shape == (0,) and len(enc.categories) == 0 and enc.n_missing == 0
    enc = encode_strings([None, np.nan])
    assert enc.codes.tolist() == [-1, -1] and len(enc.categories) == 0 and enc.n_missing == 2
    with pytest.raises(ValueError, match="1-D"):
        encode_strings(np.zeros((2, 2), dtype=object))


def test_many_categories():
    vals = np.array([f"c{i:05d}" for i in range(5000)], dtype=object)[np.random.default_rng(0).permutation(5000)]
    enc = encode_strings(vals)
    assert list(enc.categories) == sorted(vals) and (enc.counts == 1).all()
    _check_roundtrip(vals, enc)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.int16, torch.uint8])
def test_integer_categories_and_map_codes(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 50, (400, 3), generator=g).to(dtype)
    x[:, 1] = x[:, 1] * 7 % 13
    cats = integer_categories(x)
    for j, (vals, counts) in enumerate(cats):
        u, c = np.unique(x[:, j].numpy(), return_counts=True)
        assert vals.device == x.device and vals.tolist() == u.tolist() and counts.tolist() == c.tolist()
    codes = map_codes(x, [v for v, _ in cats])
    assert codes.dtype == torch.int32 and codes.shape == x.shape
    for j, (vals, _) in enumerate(cats):
        assert torch.equal(vals[codes[:, j].long()], x[:, j])
    # unknown values and the missing sentinel
    y = torch.tensor([[0, 0, 0], [60, 6, 1]], dtype=dtype)
    known = [v for v, _ in cats]
    c = map_codes(y, known)
    for j in range(3):
        for i in range(2):
            hit = (known[j] == y[i, j]).nonzero()
            assert int(c[i, j]) == (int(hit[0, 0]) if hit.numel() else UNKNOWN)
    assert map_codes(y, known, missing_value=0)[0].tolist() == [MISSING] * 3


def test_integer_categories_missing_value_1d_and_empty():
    x = torch.tensor([5, -1, 3, 5, -1])
    [(vals, counts)] = integer_categories(x, missing_value=-1)
    assert vals.tolist() == [3, 5] and counts.tolist() == [1, 2]
    assert map_codes(x, [vals], missing_value=-1).tolist() == [1, MISSING, 0, 1, MISSING]
    [(vals, counts)] = integer_categories(torch.zeros(0, dtype=torch.int64))
    assert vals.numel() == 0 and counts.numel() == 0
    assert map_codes(torch.tensor([1, 2]), [vals]).tolist() == [UNKNOWN, UNKNOWN]
    with pytest.raises(ValueError, match="sorted ascending"):
        map_codes(torch.tensor([1]), [torch.tensor([3, 1])])
    with pytest.raises(TypeError, match="integer dtype"):
        integer_categories(torch.zeros(3))
    with pytest.raises(ValueError, match="one entry per column"):
        map_codes(torch.zeros(3, 2, dtype=torch.int64), [torch.tensor([0])])


def _sklearn_infrequent(counts, min_frequency, max_categories):
    """Fit OneHotEncoder on a column with exactly these category counts; its infrequent indices."""
    if min_frequency is None and max_categories is None:
        return []
    X = np.repeat(np.arange(len(counts)), counts).reshape(-1, 1)
    enc = OneHotEncoder(min_frequency=min_frequency, max_categories=max_categories,
                        handle_unknown="infrequent_if_exist", sparse_output=False).fit(X)
    inf = enc.infrequent_categories_[0]
    return [] if inf is None else inf.tolist()


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 6), min_size=1, max_size=9),
       min_frequency=st.one_of(st.none(), st.integers(1, 7), st.sampled_from([0.05, 0.1, 0.25, 0.5, 0.99])),
       max_categories=st.one_of(st.none(), st.integers(1, 10)))
def test_infrequent_mask_matches_sklearn(counts, min_frequency, max_categories):
    """Ties (equal counts) are frequent with small counts here, so the stable tie order is exercised."""
    mask = infrequent_mask(counts, sum(counts), min_frequency, max_categories)
    assert np.flatnonzero(mask).tolist() == _sklearn_infrequent(counts, min_frequency, max_categories)


def test_infrequent_mapping_and_validation():
    assert infrequent_mapping(np.array([False, False])) is None
    assert infrequent_mapping(np.array([True, False, True, False])).tolist() == [2, 0, 2, 1]
    assert infrequent_mask(torch.tensor([3, 1, 3]), 7, max_categories=1).tolist() == [True] * 3
    with pytest.raises(ValueError, match="min_frequency"):
        infrequent_mask([1, 2], 3, min_frequency=0)
    with pytest.raises(ValueError, match="min_frequency"):
        infrequent_mask([1, 2], 3, min_frequency=1.5)
    with pytest.raises(ValueError, match="max_categories"):
        infrequent_mask([1, 2], 3, max_categories=0)
