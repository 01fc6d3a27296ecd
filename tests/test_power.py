"""PowerTransformer vs scikit-learn's, every backend; check_estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.preprocessing import PowerTransformer as SkPT

from kernelflow.preprocessing.power import PowerTransformer


def _data(method, seed=0, nan=True):
    g = np.random.default_rng(seed)
    X = np.column_stack([g.lognormal(size=60), g.exponential(size=60) + 0.1, g.normal(size=60) * 3 + 5,
                         np.full(60, 2.5)])
    if method == "yeo-johnson":
        X[:, 2] -= 5
    else:
        X[:, 2] = np.abs(X[:, 2]) + 0.1
    if nan:
        X[g.random(X.shape) < 0.1] = np.nan
    return X


@pytest.mark.parametrize("method", ["yeo-johnson", "box-cox"])
@pytest.mark.parametrize("standardize", [True, False])
def test_matches_sklearn(device_backend, method, standardize):
    dev, be = device_backend
    X = _data(method)
    if method == "box-cox":
        X = X[:, :3]  # scipy's boxcox MLE is undefined on a constant column
    sk = SkPT(method=method, standardize=standardize).fit(X)
    kf = PowerTransformer(method=method, standardize=standardize, backend=be)
    Xt = torch.tensor(X, device=dev)
    got = kf.fit(Xt).transform(Xt)
    np.testing.assert_allclose(kf.lambdas_, sk.lambdas_, rtol=1e-12)
    # float64 data; device backends reach ~1e-12 (fp64) or fp32 rounding on float32 paths
    np.testing.assert_allclose(got.cpu().numpy(), sk.transform(X), rtol=1e-7, atol=1e-7)
    back = kf.inverse_transform(got)
    np.testing.assert_allclose(back.cpu().numpy(), sk.inverse_transform(sk.transform(X)), rtol=1e-6, atol=1e-6)


def test_numpy_fit_transform_and_names():
    X = _data("yeo-johnson", seed=1)
    sk = SkPT()
    kf = PowerTransformer()
    np.testing.assert_allclose(kf.fit_transform(X), sk.fit_transform(X), rtol=1e-9, atol=1e-9)
    assert list(kf.get_feature_names_out()) == list(sk.get_feature_names_out())
    assert kf.set_output(transform="torch").transform(X).dtype == torch.float64


def test_box_cox_rejects_non_positive():
    X = _data("box-cox")[:, :3]
    X[3, 1] = 0.0
    with pytest.raises(ValueError, match="strictly positive"):
        PowerTransformer(method="box-cox").fit(X)
    kf = PowerTransformer(method="box-cox").fit(_data("box-cox")[:, :3])
    with pytest.raises(ValueError, match="strictly positive"):
        kf.transform(X)


def test_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator  # noqa: PLC0415

    check_estimator(PowerTransformer())


def test_save_load(tmp_path):
    import kernelflow

    X = _data("yeo-johnson", seed=2)
    kf = PowerTransformer().fit(X)
    kernelflow.save(kf, tmp_path / "pt.safetensors")
    np.testing.assert_array_equal(kernelflow.load(tmp_path / "pt.safetensors").transform(X), kf.transform(X))
