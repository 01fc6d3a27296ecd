"""Weighted column statistics against a float64 numpy reference and scikit-learn's weighted
StandardScaler, with NaN, zero weights, strided / transposed input, empty and huge values; merges
across chunks equal one pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import preprocessing as skp

from _helpers import registered_backends
from kernelflow import ops
from kernelflow.preprocessing import StandardScaler

BACKENDS = registered_backends(ops.weighted._weighted_op)  # cpu and torch: the family has no CUDA / Triton kernels


def _ref(X, w):
    X = X.astype(np.float64)
    fin = np.isfinite(X) & (w[:, None] != 0)
    W = np.where(fin, w[:, None], 0).sum(0)
    mean = np.where(fin, w[:, None] * X, 0).sum(0) / np.where(W > 0, W, 1)
    m2 = np.where(fin, w[:, None] * (X - mean) ** 2, 0).sum(0)
    nan = np.where(np.isnan(X), w[:, None], 0).sum(0)
    return np.stack([W, nan, mean, m2, np.where(fin, X, np.inf).min(0, initial=np.inf),
                     np.where(fin, X, -np.inf).max(0, initial=-np.inf)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["c", "f", "strided"])
@pytest.mark.parametrize("unit", [False, True])
def test_weighted_column_stats(backend, dtype, layout, unit):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(5000, 13)) * 10.0 ** np.arange(-6, 7)).astype(dtype) + 1e4
    X[rng.random(X.shape) < 0.05] = np.nan
    w = np.ones(5000) if unit else rng.uniform(0, 3, 5000)
    if not unit:
        w[::11] = 0.0
    if layout == "f":
        X = np.asfortranarray(X)
    elif layout == "strided":
        X = np.repeat(X, 2, axis=1)[:, ::2]
    s = ops.weighted_column_stats(torch.from_numpy(X), None if unit else w, backend=backend).numpy()
    ref = _ref(X, w)
    np.testing.assert_allclose(s[[0, 1, 4, 5]], ref[[0, 1, 4, 5]], rtol=1e-12)
    np.testing.assert_allclose(s[2], ref[2], rtol=1e-12)
    # within the Chan-Golub-LeVeque bound of the two-pass error (the reference's own rounding
    # included): |dM2| <= 1e-8 M2 + W (W eps mean)^2
    eps = np.finfo(np.float64).eps
    bound = 1e-8 * ref[3] + ref[0] * (ref[0] * eps * ref[2]) ** 2
    assert np.all(np.abs(s[3] - ref[3]) <= bound)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weighted_edges(backend):
    for X in (np.zeros((0, 3)), np.full((4, 2), np.nan), np.array([[1e300, -1e300]]), np.full((7, 1), 3.3)):
        w = np.linspace(0.5, 1.5, X.shape[0])
        s = ops.weighted_column_stats(torch.from_numpy(X), w, backend=backend).numpy()
        np.testing.assert_allclose(s, _ref(X, w), atol=1e-25)  # ours: exactly 0 for a constant column
    const = ops.weighted_column_stats(torch.full((10000, 1), 0.1), None, backend=backend).numpy()
    assert const[3, 0] == 0.0  # a constant column has variance exactly 0
    with pytest.raises(ValueError, match="sample_weight"):
        ops.weighted_column_stats(torch.zeros(4, 2), np.ones(3), backend=backend)


def test_weighted_merge_and_partial_fit():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 5)) * 7 + 3
    X[rng.random(X.shape) < 0.03] = np.nan
    w = rng.uniform(0.1, 2, 3000)
    whole = ops.weighted_column_stats(torch.from_numpy(X), w).numpy()
    acc = None
    sc = StandardScaler()
    ref = skp.StandardScaler()
    for i in range(0, 3000, 701):
        s = ops.weighted_column_stats(torch.from_numpy(X[i:i + 701]), w[i:i + 701]).numpy()
        acc = s if acc is None else ops.merge_stats(acc, s)
        sc.partial_fit(X[i:i + 701], sample_weight=w[i:i + 701])
        ref.partial_fit(X[i:i + 701], sample_weight=w[i:i + 701])
    np.testing.assert_allclose(acc, whole, rtol=1e-10)
    for attr in ("mean_", "var_", "scale_", "n_samples_seen_"):
        np.testing.assert_allclose(getattr(sc, attr), getattr(ref, attr), rtol=1e-10)
    np.testing.assert_allclose(sc.transform(X), ref.transform(X), rtol=1e-10)


def test_estimator_takes_inputs_requiring_grad():
    x = torch.randn(50, 3, dtype=torch.float64, requires_grad=True)
    sc = StandardScaler().fit(x, sample_weight=torch.rand(50))
    y = sc.transform(x)
    y.sum().backward()  # transform keeps the graph; fit only read the values
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(1.0 / sc.scale_, (50, 3)))
