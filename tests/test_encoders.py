"""OneHotEncoder and OrdinalEncoder against scikit-learn's, on every backend and input kind."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn.preprocessing as skp
import torch
from sklearn.utils.estimator_checks import check_estimator

import kernelflow
from kernelflow.preprocessing.encoders import OneHotEncoder, OrdinalEncoder


def data(rows=120, seed=0):
    """Object columns: strings, floats with NaN, strings with None, one constant column."""
    rng = np.random.default_rng(seed)
    X = np.empty((rows, 4), dtype=object)
    X[:, 0] = rng.choice(["a", "b", "c", "d", "e"], rows, p=[0.4, 0.3, 0.2, 0.07, 0.03])
    X[:, 1] = rng.choice([1.0, 2.5, -3.0, np.nan], rows)
    X[:, 2] = rng.choice(["x", "y", None], rows, p=[0.6, 0.35, 0.05])
    X[:, 3] = "k"
    return X


def unseen(X):
    Xt = X[:10].copy()
    Xt[0, 0] = "zz"
    Xt[1, 1] = 7.0
    return Xt


def ints(rows=100, seed=1):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, 6, rows), rng.integers(-3, 3, rows) * 10, np.full(rows, 5)], 1).astype(np.int64)


def same_categories(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype
        assert [str(v) for v in x] == [str(v) for v in y]


ONEHOT = [{}, {"drop": "first"}, {"drop": "if_binary", "handle_unknown": "ignore"},
          {"handle_unknown": "ignore", "min_frequency": 5}, {"handle_unknown": "infrequent_if_exist", "max_categories": 3},
          {"handle_unknown": "infrequent_if_exist", "min_frequency": 0.1, "dtype": np.float32}]


@pytest.mark.parametrize("params", ONEHOT, ids=str)
def test_onehot_vs_sklearn(device_backend, params):
    device, backend = device_backend
    X = data()
    ours = OneHotEncoder(sparse_output=False, backend=backend, **params).fit(X)
    ref = skp.OneHotEncoder(sparse_output=False, **params).fit(X)
    same_categories(ours.categories_, ref.categories_)
    assert list(ours.get_feature_names_out()) == list(ref.get_feature_names_out())
    if "min_frequency" in params or "max_categories" in params:
        for a, b in zip(ours.infrequent_categories_, ref.infrequent_categories_):
            assert (a is None) == (b is None) and (a is None or [str(v) for v in a] == [str(v) for v in b])
    if params.get("drop"):
        assert [None if v is None else int(v) for v in ours.drop_idx_] == [None if v is None else int(v) for v in ref.drop_idx_]
    else:
        assert ours.drop_idx_ is None and ref.drop_idx_ is None
    out = ours.transform(X)
    exp = ref.transform(X)
    assert out.dtype == exp.dtype
    np.testing.assert_array_equal(out, exp)
    inv = ours.inverse_transform(out)
    np.testing.assert_array_equal(inv.astype(str), ref.inverse_transform(exp).astype(str))
    if params.get("handle_unknown", "error") != "error":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            np.testing.assert_array_equal(ours.transform(unseen(X)), ref.transform(unseen(X)))
    else:
        with pytest.raises(ValueError, match=r"unknown categories \[.zz.\] in column 0"):
            ours.transform(unseen(X))


@pytest.mark.parametrize("params", [{}, {"drop": "first", "max_categories": 3}], ids=str)
def test_onehot_int_tensor_on_device(device_backend, params):
    device, backend = device_backend
    X = ints()
    t = torch.from_numpy(X).to(device)
    ours = OneHotEncoder(sparse_output=False, backend=backend, **params).fit(t)
    ref = skp.OneHotEncoder(sparse_output=False, **params).fit(X)
    same_categories(ours.categories_, ref.categories_)
    out = ours.transform(t)
    assert isinstance(out, torch.Tensor) and out.device.type == device
    np.testing.assert_array_equal(out.cpu().numpy(), ref.transform(X))
    np.testing.assert_array_equal(ours.fit(X).transform(X), ref.transform(X))  # same data through the host path
    bad = t[:3].clone()
    bad[0, 1] = 999
    with pytest.raises(ValueError, match="x1"):
        ours.fit(t).transform(bad)


ORDINAL = [{}, {"handle_unknown": "use_encoded_value", "unknown_value": -1},
           {"handle_unknown": "use_encoded_value", "unknown_value": np.nan, "encoded_missing_value": -2},
           {"min_frequency": 10}, {"max_categories": 2, "dtype": np.float32}]


@pytest.mark.parametrize("params", ORDINAL, ids=str)
def test_ordinal_vs_sklearn(device_backend, params):
    device, backend = device_backend
    X = data()
    ours = OrdinalEncoder(backend=backend, **params).fit(X)
    ref = skp.OrdinalEncoder(**params).fit(X)
    same_categories(ours.categories_, ref.categories_)
    out = ours.transform(X)
    exp = ref.transform(X)
    assert out.dtype == exp.dtype
    np.testing.assert_array_equal(out, exp)
    if "max_categories" not in params:  # scikit-learn's own inverse fails there (missing + infrequent)
        np.testing.assert_array_equal(ours.inverse_transform(out).astype(str), ref.inverse_transform(exp).astype(str))
    assert list(ours.get_feature_names_out()) == list(ref.get_feature_names_out())
    if params.get("handle_unknown") == "use_encoded_value":
        np.testing.assert_array_equal(ours.transform(unseen(X)), ref.transform(unseen(X)))
        np.testing.assert_array_equal(ours.inverse_transform(ours.transform(unseen(X))).astype(str),
                                      ref.inverse_transform(ref.transform(unseen(X))).astype(str))
    else:
        with pytest.raises(ValueError):
            ours.transform(unseen(X))
    t = torch.from_numpy(ints()).to(device)
    o = OrdinalEncoder(backend=backend, **params).fit(t).transform(t)
    assert o.device.type == device
    np.testing.assert_array_equal(o.cpu().numpy(), skp.OrdinalEncoder(**params).fit_transform(ints()))


def test_pandas_categorical_and_names():
    X = data()
    df = pd.DataFrame({"s": pd.Categorical(X[:, 0]), "f": X[:, 1].astype(float), "n": ints(120)[:, 0],
                       "o": X[:, 2]})
    for ours, ref in [(OneHotEncoder(sparse_output=False), skp.OneHotEncoder(sparse_output=False)), (OrdinalEncoder(), skp.OrdinalEncoder())]:
        ours.fit(df)
        ref.fit(df)
        same_categories(ours.categories_, ref.categories_)
        np.testing.assert_array_equal(ours.feature_names_in_, ref.feature_names_in_)
        assert list(ours.get_feature_names_out()) == list(ref.get_feature_names_out())
        np.testing.assert_array_equal(ours.transform(df), ref.transform(df))
        out = ours.set_output(transform="pandas").transform(df)
        assert list(out.columns) == list(ref.get_feature_names_out())


def test_arrow_polars_torch_output():
    pa = pytest.importorskip("pyarrow")
    df = pd.DataFrame(data(), columns=list("abcd")).astype({"b": float})
    ref = skp.OneHotEncoder(sparse_output=False).fit(df)
    inputs = [pa.Table.from_pandas(df)]
    try:
        import polars as pl

        inputs.append(pl.from_pandas(df))
    except ImportError:
        pass
    for inp in inputs:
        ours = OneHotEncoder(sparse_output=False).fit(inp)
        assert list(ours.get_feature_names_out()) == list(ref.get_feature_names_out())
        np.testing.assert_array_equal(ours.transform(inp), ref.transform(df))
    out = OrdinalEncoder().set_output(transform="torch").fit(df).transform(df)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), skp.OrdinalEncoder().fit_transform(df))


def test_warn_unknown_as_infrequent():
    X = data()
    ours = OneHotEncoder(sparse_output=False, handle_unknown="warn", max_categories=3).fit(X)
    ref = skp.OneHotEncoder(sparse_output=False, handle_unknown="warn", max_categories=3).fit(X)
    with pytest.warns(UserWarning, match=r"columns \[0, 1\]"):
        out = ours.transform(unseen(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        np.testing.assert_array_equal(out, ref.transform(unseen(X)))


def test_user_categories_one_row_and_combiner():
    X = data()
    cats = [["e", "d", "c", "b", "a"], [-3.0, 1.0, 2.5, np.nan], ["x", "y", None], ["k", "q"]]
    for kw in [{"categories": cats}, {"categories": cats, "drop": ["a", np.nan, "x", "q"]}]:
        ours, ref = OneHotEncoder(sparse_output=False, **kw).fit(X), skp.OneHotEncoder(sparse_output=False, **kw).fit(X)
        same_categories(ours.categories_, ref.categories_)
        np.testing.assert_array_equal(ours.transform(X), ref.transform(X))
        assert list(ours.get_feature_names_out()) == list(ref.get_feature_names_out())
    with pytest.raises(ValueError, match="unknown categories"):
        OneHotEncoder(sparse_output=False, categories=[["a"], [1.0], ["x"], ["k"]]).fit(X)
    for enc in (OneHotEncoder, skp.OneHotEncoder):
        with pytest.raises(ValueError, match="Unsorted"):
            enc(categories=[[2.5, 1.0]]).fit(np.array([[1.0], [2.5]]))
    one = X[:1]
    np.testing.assert_array_equal(OneHotEncoder(sparse_output=False).fit_transform(one), skp.OneHotEncoder(sparse_output=False).fit_transform(one))
    comb = lambda f, c: f"{f}={c}"  # noqa: E731
    assert list(OneHotEncoder(sparse_output=False, feature_name_combiner=comb).fit(X).get_feature_names_out()) == \
        list(skp.OneHotEncoder(feature_name_combiner=comb).fit(X).get_feature_names_out())


@pytest.mark.parametrize(
    "est, exc, match",
    [(OneHotEncoder(sparse_output="yes"), ValueError, "sparse_output"),
     (OneHotEncoder(sparse_output=False, handle_unknown="bad"), ValueError, "handle_unknown"),
     (OneHotEncoder(sparse_output=False, drop="last"), ValueError, "drop"),
     (OneHotEncoder(sparse_output=False, min_frequency=-1), ValueError, "min_frequency"),
     (OneHotEncoder(sparse_output=False, max_categories=0), ValueError, "max_categories"),
     (OneHotEncoder(sparse_output=False, categories="nope"), ValueError, "categories"),
     (OneHotEncoder(sparse_output=False, dtype="str"), ValueError, "dtype"),
     (OrdinalEncoder(handle_unknown="ignore"), ValueError, "handle_unknown"),
     (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=0), ValueError, "unknown_value"),
     (OrdinalEncoder(handle_unknown="use_encoded_value"), TypeError, "unknown_value"),
     (OrdinalEncoder(unknown_value=-1), TypeError, "unknown_value"),
     (OrdinalEncoder(encoded_missing_value=0), ValueError, "encoded_missing_value"),
     (OrdinalEncoder(min_frequency=2.0), ValueError, "min_frequency")],
    ids=repr,
)
def test_bad_params(est, exc, match):
    with pytest.raises(exc, match=match):
        est.fit(data())


@pytest.mark.parametrize(
    "est",
    [OneHotEncoder(sparse_output=False), OneHotEncoder(sparse_output=False, handle_unknown="ignore", drop="if_binary"), OneHotEncoder(sparse_output=False, max_categories=3),
     OrdinalEncoder(), OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, min_frequency=2)],
    ids=repr,
)
def test_check_estimator(est):
    check_estimator(est)


@pytest.mark.parametrize("est", [OneHotEncoder(sparse_output=False, dtype="float32", drop="first", min_frequency=5, handle_unknown="ignore"),
                                 OrdinalEncoder(dtype="float64", handle_unknown="use_encoded_value", unknown_value=-1)],
                         ids=repr)
@pytest.mark.parametrize("X", [data(), ints(), data()[:, 1:2].astype(np.float64)], ids=["object", "int", "float"])
def test_save_load(tmp_path, est, X):
    est.fit(X)
    p = tmp_path / "enc.kf"
    kernelflow.save(est, p)
    back = kernelflow.load(p)
    assert type(back) is type(est) and repr(back.get_params()) == repr(est.get_params())
    same_categories(back.categories_, est.categories_)
    Xt = X[:20]
    np.testing.assert_array_equal(back.transform(Xt), est.transform(Xt))
    np.testing.assert_array_equal(back.get_feature_names_out(), est.get_feature_names_out())


def test_save_load_default_dtype(tmp_path):
    """The default dtype=np.float64 (a numpy type) is saved as its name."""
    est = OneHotEncoder(sparse_output=False).fit(data())
    kernelflow.save(est, tmp_path / "d.kf")
    back = kernelflow.load(tmp_path / "d.kf")
    np.testing.assert_array_equal(back.transform(data()), est.transform(data()))


@pytest.mark.parametrize("params", [{}, {"handle_unknown": "ignore", "drop": "first"}, {"max_categories": 3},
                                    {"handle_unknown": "infrequent_if_exist", "min_frequency": 5}])
def test_sparse_output_matches_sklearn(params):
    """Default sparse_output=True: CSR built from the codes, equal to scikit-learn's CSR."""
    import scipy.sparse as sp

    X = data()
    ours = OneHotEncoder(**params).fit(X)
    ref = skp.OneHotEncoder(**params).fit(X)
    X2 = X.copy()
    X2[0, 0] = "never-seen" if params.get("handle_unknown", "error") != "error" else X2[0, 0]
    a, b = ours.transform(X2), ref.transform(X2)
    assert sp.issparse(a) and a.format == "csr" and a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.toarray(), b.toarray())
    assert a.has_sorted_indices
    np.testing.assert_array_equal(ours.inverse_transform(a).astype(str), ref.inverse_transform(b).astype(str))

    Xi = np.random.default_rng(1).integers(0, 6, size=(50, 3))
    ti = OneHotEncoder(**params).fit(torch.from_numpy(Xi)).transform(torch.from_numpy(Xi))
    assert ti.layout == torch.sparse_csr
    np.testing.assert_array_equal(ti.to_dense().numpy(), skp.OneHotEncoder(**params).fit(Xi).transform(Xi).toarray())
