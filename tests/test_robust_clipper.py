"""RobustScaler against scikit-learn and OutlierClipper against numpy-derived bounds, on every
backend. The quantile step runs through kernelflow.ops.column_quantiles where the build has it,
and through a numpy.nanquantile stand-in (fixture ``quantiles``) everywhere, so the estimator
code is exercised either way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn.preprocessing as skp
import torch
from sklearn.utils.estimator_checks import check_estimator

import kernelflow
from kernelflow import ops
from kernelflow.preprocessing import _base
from kernelflow.preprocessing.robust import OutlierClipper, RobustScaler


def _np_quantiles(x, q, backend="auto"):
    return np.nanquantile(x.detach().cpu().numpy().astype(np.float64), list(q), axis=0).reshape(len(q), -1)


@pytest.fixture(params=["numpy", "op"])
def quantiles(request, monkeypatch):
    if request.param == "op":
        if not hasattr(ops, "column_quantiles"):
            pytest.skip("this build has no kernelflow.ops.column_quantiles")
    else:
        monkeypatch.setattr(_base, "column_quantiles", _np_quantiles)
    return request.param


@pytest.fixture
def np_quantiles(monkeypatch):
    monkeypatch.setattr(_base, "column_quantiles", _np_quantiles)


def data(rows=200, cols=5, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_t(3, size=(rows, cols)) * rng.uniform(0.1, 50, cols) + rng.normal(size=cols) * 20).astype(dtype)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 1] = 3.0  # constant column
    return X


def close(a, b, dtype=np.float64):
    # float32 data: the kernel transform runs in fp32 and scikit-learn's in float32 too
    rtol = 1e-12 if dtype == np.float64 else 3e-6
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                               rtol=rtol, atol=rtol)


ROBUST = [{}, {"with_centering": False}, {"with_scaling": False}, {"quantile_range": (10.0, 90.0), "unit_variance": True}]


@pytest.mark.parametrize("params", ROBUST, ids=str)
def test_robust_vs_sklearn(device_backend, quantiles, params):
    device, backend = device_backend
    X = data()
    ours = RobustScaler(backend=backend, **params)
    ref = skp.RobustScaler(**params)
    out = ours.fit_transform(torch.from_numpy(X).to(device))
    exp = ref.fit_transform(X)
    assert isinstance(out, torch.Tensor) and out.device.type == device
    close(out.cpu().numpy(), exp)
    for attr in ("center_", "scale_"):
        a, b = getattr(ours, attr), getattr(ref, attr)
        assert (a is None) == (b is None)
        if a is not None:
            close(a, b)
    close(ours.inverse_transform(exp), ref.inverse_transform(exp))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_robust_numpy_pandas_one_row(quantiles, dtype):
    X = data(dtype=dtype)
    out = RobustScaler().fit_transform(X)
    assert out.dtype == dtype
    close(out, skp.RobustScaler().fit_transform(X), dtype)
    one = X[:1]
    close(RobustScaler().fit_transform(one), skp.RobustScaler().fit_transform(one), dtype)
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    est = RobustScaler().set_output(transform="pandas").fit(df)
    assert list(est.get_feature_names_out()) == list(df.columns)
    assert list(est.transform(df).columns) == list(df.columns)


def test_robust_all_nan_column_and_inf(np_quantiles):
    X = data()
    X[:, 0] = np.nan
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        exp = skp.RobustScaler().fit_transform(X)
    np.testing.assert_array_equal(np.isnan(RobustScaler().fit_transform(X)), np.isnan(exp))
    X[3, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        RobustScaler().fit(X)
    with pytest.raises(ValueError, match="infinity"):
        RobustScaler(backend="torch").fit(torch.from_numpy(X))


def _bounds_np(X, method, k, qr):
    if method == "zscore":
        m, s = np.nanmean(X, 0), np.nanstd(X, 0)
        return m - k * s, m + k * s
    if method == "iqr":
        q1, q3 = np.nanpercentile(X, [25, 75], axis=0)
        return q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    return tuple(np.nanpercentile(X, qr, axis=0))


CLIP = [{"method": "zscore", "k": 2.0}, {"method": "iqr", "k": 1.5}, {"method": "quantile", "quantile_range": (5.0, 95.0)}]


@pytest.mark.parametrize("params", CLIP, ids=lambda p: p["method"])
def test_clipper_vs_numpy(device_backend, quantiles, params):
    device, backend = device_backend
    X = data()
    est = OutlierClipper(backend=backend, **params)
    out = est.fit_transform(torch.from_numpy(X).to(device)).cpu().numpy()
    lo, hi = _bounds_np(X, params["method"], params.get("k", 3.0), params.get("quantile_range", (1.0, 99.0)))
    close(est.lower_, lo)
    close(est.upper_, hi)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(X))  # NaN passes through
    close(out, np.clip(X, lo, hi))
    assert list(est.get_feature_names_out()) == [f"x{i}" for i in range(X.shape[1])]


def test_clipper_partial_fit_and_errors(np_quantiles):
    X = data(rows=300)
    full = OutlierClipper().fit(X)
    part = OutlierClipper()
    for chunk in np.array_split(X, 4):
        part.partial_fit(chunk)
    np.testing.assert_allclose(part.lower_, full.lower_, rtol=1e-12)
    np.testing.assert_allclose(part.upper_, full.upper_, rtol=1e-12)
    with pytest.raises(AttributeError) as info:
        OutlierClipper(method="iqr").partial_fit(X)
    assert "zscore" in str(info.value.__cause__)
    Xe = X.copy()
    Xe[:, 0] = np.nan  # nothing learnt for an all-NaN column: no clipping
    est = OutlierClipper(method="iqr").fit(Xe)
    assert est.lower_[0] == -np.inf and est.upper_[0] == np.inf
    one = OutlierClipper().fit_transform(X[:1])
    np.testing.assert_array_equal(one, X[:1])


@pytest.mark.parametrize(
    "est, match",
    [(RobustScaler(quantile_range=(80, 20)), "Invalid quantile range"), (RobustScaler(quantile_range=(0, 101)), "Invalid quantile range"),
     (RobustScaler(quantile_range="x"), "quantile_range"), (OutlierClipper(method="mad"), "method"),
     (OutlierClipper(k=-1.0), "k"), (OutlierClipper(k=np.inf), "k"), (OutlierClipper(quantile_range=(5, 1)), "quantile_range")],
    ids=repr,
)
def test_bad_params(np_quantiles, est, match):
    with pytest.raises(ValueError, match=match):
        est.fit(data())


@pytest.mark.parametrize(
    "est",
    [RobustScaler(), RobustScaler(with_centering=False, unit_variance=True), OutlierClipper(),
     OutlierClipper(method="iqr"), OutlierClipper(method="quantile")],
    ids=repr,
)
def test_check_estimator(np_quantiles, est):
    check_estimator(est)


@pytest.mark.parametrize("est", [RobustScaler(unit_variance=True), RobustScaler(with_scaling=False),
                                 OutlierClipper(k=2.5), OutlierClipper(method="quantile")], ids=repr)
def test_save_load(np_quantiles, tmp_path, est):
    X = data()
    est.fit(X)
    p = tmp_path / "m.kf"
    kernelflow.save(est, p)
    back = kernelflow.load(p)
    assert type(back) is type(est) and back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.transform(X), est.transform(X))
    if isinstance(est, OutlierClipper) and est.method == "zscore":
        back.partial_fit(X)
