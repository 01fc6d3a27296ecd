"""The sparse op family against float64 dense references and scikit-learn's sparse utilities:
CSR / CSC, int32 / int64 indices, float32 / float64 data, NaN, explicit zeros, empty matrices,
sample weights, every backend that runs here; and the estimators on sparse input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn import preprocessing as skp
from sklearn.utils.sparsefuncs import mean_variance_axis

from sklearn.impute import SimpleImputer as SkSimpleImputer

from _helpers import registered_backends
from kernelflow import ops
from kernelflow.ops.sparse import as_compressed
from kernelflow.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, SimpleImputer, StandardScaler

BACKENDS = registered_backends(ops.sparse._stats_op)  # cpu and torch: the family has no CUDA / Triton kernels


def _matrix(fmt, rows=300, cols=9, density=0.2, dtype=np.float64, seed=0, index=np.int32):
    rng = np.random.default_rng(seed)
    X = sp.random(rows, cols, density=density, format="csr", random_state=seed, dtype=np.float64)
    X.data = (X.data - 0.5) * 10.0 ** rng.integers(-3, 6, X.data.size)  # mixed magnitudes and signs
    X.data[::13] = np.nan
    X.data[::17] = 0.0  # explicit zeros
    X = X.asformat(fmt).astype(dtype)
    X.indices = X.indices.astype(index)
    X.indptr = X.indptr.astype(index)
    return X


def _dense_stats(D, w):
    fin = np.isfinite(D) & (w[:, None] != 0)
    W = np.where(fin, w[:, None], 0).sum(0)
    mean = np.where(fin, w[:, None] * D, 0).sum(0) / np.where(W > 0, W, 1)
    m2 = np.where(fin, w[:, None] * (D - mean) ** 2, 0).sum(0)
    nan = np.where(np.isnan(D), w[:, None], 0).sum(0)
    mn = np.where(fin, D, np.inf).min(0, initial=np.inf)
    mx = np.where(fin, D, -np.inf).max(0, initial=-np.inf)
    return np.stack([W, nan, mean, m2, mn, mx])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", [np.int32, np.int64])
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_column_stats(backend, fmt, dtype, index, weighted):
    X = _matrix(fmt, dtype=dtype, index=index)
    w = np.random.default_rng(1).uniform(0, 2, X.shape[0]) if weighted else None
    if weighted:
        w[::7] = 0.0  # weight 0 rows are absent
    s = ops.sparse_column_stats(X, w, backend=backend).numpy()
    ref = _dense_stats(X.toarray().astype(np.float64), w if weighted else np.ones(X.shape[0]))
    np.testing.assert_allclose(s[[0, 1, 4, 5]], ref[[0, 1, 4, 5]], rtol=1e-12)
    np.testing.assert_allclose(s[2], ref[2], rtol=1e-9, atol=1e-12 * np.abs(ref[4:]).max())
    np.testing.assert_allclose(s[3], ref[3], rtol=1e-9)
    if not weighted:  # the peer: scikit-learn's own sparse moments
        mean, var = mean_variance_axis(X.astype(np.float64), 0)
        np.testing.assert_allclose(s[3] / s[0], var, rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_stats_edge_shapes(backend):
    for X in (sp.csr_matrix((0, 3)), sp.csr_matrix((4, 0)), sp.csc_matrix((5, 3)), sp.csr_matrix(np.full((3, 2), np.nan))):
        s = ops.sparse_column_stats(X, backend=backend).numpy()
        ref = _dense_stats(X.toarray(), np.ones(X.shape[0]))
        np.testing.assert_allclose(s, ref)
    with pytest.raises(ValueError, match="sample_weight"):
        ops.sparse_column_stats(sp.csr_matrix((4, 2)), np.ones(3), backend=backend)
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.sparse_column_stats(sp.csr_matrix(np.eye(3, dtype=np.int64)), backend=backend)


def test_sparse_stats_merge_across_chunks():
    X = _matrix("csr", rows=1000)
    w = np.random.default_rng(2).uniform(0.1, 3, 1000)
    whole = ops.sparse_column_stats(X, w).numpy()
    parts = [ops.sparse_column_stats(X[i:i + 137], w[i:i + 137]).numpy() for i in range(0, 1000, 137)]
    acc = parts[0]
    for p in parts[1:]:
        acc = ops.merge_stats(acc, p)
    np.testing.assert_allclose(acc, whole, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_column_apply(backend, fmt, dtype):
    X = _matrix(fmt, dtype=dtype)
    F = X.shape[1]
    rng = np.random.default_rng(3)
    p = ops.sparse_apply_params(F, fill=rng.normal(size=F), lo=-rng.uniform(1, 5, F), hi=rng.uniform(1, 5, F),
                                scale=rng.uniform(0.5, 2, F))
    got = ops.sparse_column_apply(X, p, backend=backend).numpy()
    ref = ops.sparse_column_apply_reference(as_compressed(X), torch.from_numpy(p)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-6 if dtype == np.float32 else 1e-15)
    # in place, structure untouched, implicit zeros stay zero
    Y = X.copy()
    ops.sparse_column_apply(as_compressed(Y), p, out=torch.from_numpy(Y.data), backend=backend)
    np.testing.assert_allclose(Y.data, got)
    assert (Y.indices == X.indices).all() and (Y.indptr == X.indptr).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_column_quantiles(backend, fmt):
    X = _matrix(fmt, rows=201)
    q = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    got = ops.sparse_column_quantiles(X, q, backend=backend).numpy()
    ref = np.nanquantile(X.toarray(), q, axis=0)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    allnan = sp.csc_matrix(np.full((4, 1), np.nan))
    assert np.isnan(ops.sparse_column_quantiles(allnan, [0.5], backend=backend).numpy()).all()
    with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
        ops.sparse_column_quantiles(X, [1.5], backend=backend)


def test_torch_sparse_input():
    X = _matrix("csr")
    t = torch.sparse_csr_tensor(torch.from_numpy(X.indptr.astype(np.int64)), torch.from_numpy(X.indices.astype(np.int64)),
                                torch.from_numpy(X.data), X.shape)
    np.testing.assert_allclose(ops.sparse_column_stats(t).numpy(), ops.sparse_column_stats(X).numpy())
    out = StandardScaler(with_mean=False).fit(t).transform(t)
    assert out.layout == torch.sparse_csr
    ref = skp.StandardScaler(with_mean=False).fit(X).transform(X)
    np.testing.assert_allclose(out.to_dense().numpy(), ref.toarray(), rtol=1e-12)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_estimators_on_sparse(fmt, dtype):
    X = _matrix(fmt, dtype=dtype)
    w = np.random.default_rng(4).uniform(0.1, 2, X.shape[0])
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    pairs = [(StandardScaler(with_mean=False), skp.StandardScaler(with_mean=False), {}),
             (StandardScaler(with_mean=False), skp.StandardScaler(with_mean=False), {"sample_weight": w}),
             (MaxAbsScaler(), skp.MaxAbsScaler(), {}),
             (RobustScaler(with_centering=False), skp.RobustScaler(with_centering=False), {}),
             (SimpleImputer(), SkSimpleImputer(), {}),
             (SimpleImputer(strategy="median"), SkSimpleImputer(strategy="median"), {})]
    for ours, ref, kw in pairs:
        a = ours.fit(X, **kw).transform(X)
        b = ref.fit(X, **kw).transform(X)
        assert sp.issparse(a) and a.dtype == b.dtype, type(ours).__name__
        np.testing.assert_allclose(a.toarray(), b.toarray(), rtol=rtol, atol=0, err_msg=type(ours).__name__)
    with pytest.raises(ValueError, match="Cannot center sparse matrices"):
        StandardScaler().fit(X)
    with pytest.raises(TypeError, match="dense data is required"):
        MinMaxScaler().fit(X)
