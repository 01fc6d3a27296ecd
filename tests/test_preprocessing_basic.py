"""StandardScaler, MinMaxScaler, MaxAbsScaler, SimpleImputer against scikit-learn, on every
backend and input kind."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import sklearn.impute as ski
import sklearn.preprocessing as skp
import torch
from sklearn.utils.estimator_checks import check_estimator

import kernelflow
from kernelflow.preprocessing import MaxAbsScaler, MinMaxScaler, SimpleImputer, StandardScaler

PAIRS = [
    (StandardScaler, skp.StandardScaler, {}),
    (StandardScaler, skp.StandardScaler, {"with_mean": False}),
    (StandardScaler, skp.StandardScaler, {"with_std": False}),
    (MinMaxScaler, skp.MinMaxScaler, {}),
    (MinMaxScaler, skp.MinMaxScaler, {"feature_range": (-2, 3), "clip": True}),
    (MaxAbsScaler, skp.MaxAbsScaler, {}),
    (SimpleImputer, ski.SimpleImputer, {}),
    (SimpleImputer, ski.SimpleImputer, {"strategy": "constant", "fill_value": -7.5}),
    (SimpleImputer, ski.SimpleImputer, {"keep_empty_features": True}),
    (SimpleImputer, ski.SimpleImputer, {"strategy": "most_frequent", "add_indicator": True}),
    (SimpleImputer, ski.SimpleImputer, {"strategy": "median"}),
    (SimpleImputer, ski.SimpleImputer, {"strategy": "mean", "add_indicator": True, "keep_empty_features": True}),
]
IDS = [f"{k.__name__}-{p}" for k, _, p in PAIRS]

# float64 data: kernels compute in float64 when the output is float64, so results agree with
# scikit-learn to rounding; float32: fp32 arithmetic in the kernels and in scikit-learn.
RTOL = {np.float64: 1e-12, np.float32: 2e-6}


def data(rows=500, cols=6, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(rows, cols)) * rng.uniform(0.1, 100, cols) + rng.normal(size=cols) * 50).astype(dtype)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 2] = 4.0  # constant column
    if cols > 4:
        X[:, 4] = np.nan  # all-missing column
    return X


def close(a, b, dtype):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b))
    m = ~np.isnan(b)
    np.testing.assert_allclose(a[m], b[m], rtol=RTOL[dtype], atol=RTOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ours,theirs,params", PAIRS, ids=IDS)
def test_matches_sklearn(device_backend, ours, theirs, params, dtype):
    device, backend = device_backend
    X, X2 = data(dtype=dtype), data(rows=77, dtype=dtype, seed=1)
    ref = theirs(**params).fit(X)
    est = ours(backend=backend, **params)
    Xin = X if device == "cpu" else torch.from_numpy(X).to(device)
    est.fit(Xin)
    out = est.transform(X2 if device == "cpu" else torch.from_numpy(X2).to(device))
    out = out.cpu().numpy() if isinstance(out, torch.Tensor) else out
    assert out.dtype == dtype
    close(out, ref.transform(X2), dtype)
    for attr in ("mean_", "var_", "scale_", "data_min_", "data_max_", "min_", "max_abs_", "statistics_"):
        if hasattr(ref, attr) and getattr(ref, attr) is not None:
            # fitted statistics of float32 data carry fp32 rounding on the GPU / Triton paths
            close(getattr(est, attr), getattr(ref, attr), dtype)
    assert np.array_equal(est.get_feature_names_out(), ref.get_feature_names_out())
    if hasattr(ref, "inverse_transform") and hasattr(est, "inverse_transform"):
        Y = ref.transform(X2)
        try:
            expected = ref.inverse_transform(Y)
        except (ValueError, IndexError) as e:  # SimpleImputer inverts only with add_indicator=True (and
            # scikit-learn's inverse fails on a kept all-missing column; ours is the same method)
            with pytest.raises(type(e), match=re.escape(str(e))):
                est.inverse_transform(Y)
        else:
            close(est.inverse_transform(Y), expected, dtype)


@pytest.mark.parametrize("ours,theirs,params", PAIRS[:6] + PAIRS[6:7], ids=IDS[:7])
def test_partial_fit_equals_fit(ours, theirs, params):
    X = data(rows=1000)
    whole = ours(**params).fit(X)
    part = ours(**params)
    for chunk in np.array_split(X, 7):
        part.partial_fit(chunk)
    for attr in ("mean_", "var_", "scale_", "data_min_", "data_max_", "max_abs_", "statistics_"):
        if getattr(whole, attr, None) is not None:
            close(getattr(part, attr), getattr(whole, attr), np.float64)
    close(part.transform(X), whole.transform(X), np.float64)
    if theirs is not ski.SimpleImputer:
        skpart = theirs(**params)
        for chunk in np.array_split(X, 7):
            skpart.partial_fit(chunk)
        close(part.transform(X), skpart.transform(X), np.float64)


def test_input_kinds_and_outputs():
    X = data(rows=200, dtype=np.float32)
    ref = skp.StandardScaler().fit(X).transform(X)
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    est = StandardScaler()
    close(est.fit_transform(df), ref, np.float32)
    assert list(est.feature_names_in_) == list(df.columns)
    assert list(est.get_feature_names_out()) == list(df.columns)
    import pyarrow as pa

    close(StandardScaler().fit_transform(pa.Table.from_pandas(df)), ref, np.float32)
    import polars as pl

    close(StandardScaler().fit_transform(pl.from_pandas(df)), ref, np.float32)
    # torch in, torch out; numpy in -> torch out with set_output("torch")
    t = torch.from_numpy(X)
    out = StandardScaler().fit_transform(t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    close(out.numpy(), ref, np.float32)
    out = StandardScaler().set_output(transform="torch").fit(X).transform(X)
    assert isinstance(out, torch.Tensor)
    out = StandardScaler().set_output(transform="pandas").fit(df).transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(df.columns)
    # non-contiguous numpy (Fortran order, strided view) is read through strides
    close(StandardScaler().fit_transform(np.asfortranarray(X)), ref, np.float32)
    close(StandardScaler().fit_transform(X[::2]), skp.StandardScaler().fit_transform(X[::2]), np.float32)
    # bfloat16 output for training pipelines
    out = StandardScaler(dtype="bfloat16").fit(t).transform(t)
    assert out.dtype == torch.bfloat16
    np.testing.assert_allclose(out.float().numpy(), ref, rtol=1e-2, atol=1e-2)


def test_errors():
    X = data(rows=20)
    with pytest.raises(ValueError, match="infinity"):
        StandardScaler().fit(np.where(np.isnan(X), np.inf, X))
    with pytest.raises(ValueError, match="infinity"):
        StandardScaler().fit(torch.from_numpy(np.where(np.isnan(X), -np.inf, X)))
    est = StandardScaler().fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :3])
    with pytest.raises(ValueError, match="features"):
        est.transform(torch.from_numpy(X[:, :3]))
    with pytest.raises(ValueError, match="0 sample"):
        StandardScaler().fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="0 sample"):
        StandardScaler().fit(torch.zeros((0, 3)))
    with pytest.raises(ValueError, match="backend must be one of"):
        StandardScaler(backend="fast").fit(X)
    with pytest.raises(kernelflow.BackendUnavailableError):
        StandardScaler(backend="cuda").fit(X)
    with pytest.raises(ValueError, match="feature range"):
        MinMaxScaler(feature_range=(2, 1)).fit(X)
    with pytest.raises(ValueError, match="strategy"):
        SimpleImputer(strategy="median_of_means").fit(X)
    with pytest.raises(ValueError, match="dtype must be one of"):
        StandardScaler(dtype="int8").fit(X).transform(X)


def test_missing_values_number():
    X = data(rows=100)
    X = np.where(np.isnan(X), -1.0, X)
    ours = SimpleImputer(missing_values=-1.0).fit(X)
    ref = ski.SimpleImputer(missing_values=-1.0).fit(X)
    close(ours.transform(X), ref.transform(X), np.float64)


def test_backend_context_and_env(monkeypatch):
    X = torch.from_numpy(data(rows=50))
    with kernelflow.backend("torch"):
        a = StandardScaler().fit_transform(X)
    monkeypatch.setenv("KERNELFLOW_BACKEND", "cpu")
    b = StandardScaler().fit_transform(X)
    close(a.numpy(), b.numpy(), np.float64)
    monkeypatch.setenv("KERNELFLOW_BACKEND", "cuda")
    with pytest.raises(kernelflow.BackendUnavailableError):
        StandardScaler().fit(X)
    monkeypatch.setenv("KERNELFLOW_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="KERNELFLOW_BACKEND"):
        StandardScaler().fit(X)


def test_imputer_strings_and_most_frequent_ties():
    S = np.array([["a", "x"], [None, "y"], ["b", None], ["a", "y"], ["b", None]], dtype=object)
    for kw in ({"strategy": "most_frequent", "missing_values": None},
               {"strategy": "constant", "missing_values": None, "add_indicator": True}):
        ours, ref = SimpleImputer(**kw).fit(S), ski.SimpleImputer(**kw).fit(S)
        assert (ours.transform(S) == ref.transform(S)).all()
        assert list(ours.get_feature_names_out()) == list(ref.get_feature_names_out())
    X = np.array([[1.0, 5.0], [2.0, np.nan], [2.0, 5.0], [1.0, 7.0], [np.nan, 7.0]])  # ties: smallest wins
    np.testing.assert_array_equal(SimpleImputer(strategy="most_frequent").fit(X).statistics_,
                                  ski.SimpleImputer(strategy="most_frequent").fit(X).statistics_)
    assert not hasattr(SimpleImputer(strategy="most_frequent"), "partial_fit")
    with pytest.raises(TypeError, match="string or a number"):
        SimpleImputer(strategy="most_frequent").fit(np.array([["a"], [{"k": 1}]], dtype=object))


@pytest.mark.parametrize(
    "est",
    [StandardScaler(), StandardScaler(with_mean=False), MinMaxScaler(), MinMaxScaler(clip=True), MaxAbsScaler(),
     SimpleImputer(), SimpleImputer(strategy="constant", fill_value=2), SimpleImputer(strategy="most_frequent"),
     SimpleImputer(add_indicator=True), SimpleImputer(strategy="median")],
    ids=lambda e: repr(e),
)
def test_check_estimator(est):
    check_estimator(est)


@pytest.mark.gpu
def test_cuda_tensor_stays_on_device():
    X = torch.from_numpy(data(rows=300, dtype=np.float32)).cuda()
    out = StandardScaler().fit_transform(X)
    assert out.is_cuda
    ref = skp.StandardScaler().fit_transform(X.cpu().numpy())
    close(out.cpu().numpy(), ref, np.float32)
