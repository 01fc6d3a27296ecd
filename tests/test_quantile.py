"""column_quantiles on every backend against numpy.nanquantile, and QuantileSketch error bounds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _helpers import STRIDED_LAYOUTS, hostile_matrix, numpy_nanquantile, strided
from kernelflow.ops.quantile import column_quantiles, column_quantiles_reference
from kernelflow.ops.sketch import QuantileSketch

Q = [0.0, 0.1, 0.25, 0.5, 0.75, 0.999, 1.0]
Q_SMALL = [0.0, 0.25, 0.5, 1.0]  # fewer ranks for the Triton interpreter (one program per rank)


numpy_ref = numpy_nanquantile


def check(got: torch.Tensor, ref: np.ndarray, backend: str) -> None:
    got = got.cpu().numpy()
    assert got.shape == ref.shape and got.dtype == np.float64
    if backend in ("cpu", "torch", "triton"):  # the same float64 operations as numpy, in order
        np.testing.assert_array_equal(got, ref)
    else:  # device arithmetic uses explicit roundings too; allow one ulp for safety
        np.testing.assert_allclose(got, ref, rtol=1e-15, atol=0, equal_nan=True)


def make(rows, cols, dtype, seed=0, special=True, ties=False):
    """N(0, 1) values (halves with ``ties``); with ``special``, 10% NaN and 2% each of +inf and -inf."""
    return hostile_matrix(rows, cols, dtype, seed, ties=ties, nan=0.1 if special else 0.0, inf=0.02 if special else 0.0)


def sizes(backend):
    if backend == "triton":
        return [(0, 2), (1, 2), (37, 3), (130, 2)], Q_SMALL
    return [(0, 3), (1, 1), (1, 5), (2, 3), (257, 3), (3000, 17), (20000, 2), (5, 0)], Q


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_numpy(device_backend, dtype):
    device, backend = device_backend
    shapes, q = sizes(backend)
    for i, shape in enumerate(shapes):
        for ties in (False, True):
            x = make(*shape, dtype=dtype, seed=i, ties=ties)
            check(column_quantiles(x.to(device), q, backend=backend), numpy_ref(x, q), backend)


def test_all_nan_constant_and_inf_columns(device_backend):
    device, backend = device_backend
    x = torch.full((40, 5), 7.25, dtype=torch.float32)
    x[:, 1] = float("nan")
    x[:, 2] = float("inf")
    x[::3, 3] = -0.0
    x[1::3, 3] = 0.0
    x[:, 4] = torch.arange(40, dtype=torch.float32)
    x[5:, 4] = float("nan")  # 5 values left
    q = Q_SMALL
    got = column_quantiles(x.to(device), q, backend=backend)
    check(got, numpy_ref(x, q), backend)
    assert torch.isnan(got[:, 1].cpu()).all() and (got[:, 0].cpu() == 7.25).all()


@pytest.mark.parametrize("layout", STRIDED_LAYOUTS)
def test_non_contiguous(device_backend, layout):
    device, backend = device_backend
    x = strided(make(120 if backend == "triton" else 600, 8, torch.float32, seed=3).to(device), layout, step=3, width=6)
    q = Q_SMALL if backend == "triton" else Q
    check(column_quantiles(x, q, backend=backend), numpy_ref(x, q), backend)


def test_q_forms_and_validation():
    x = make(50, 3, torch.float64)
    ref = numpy_ref(x, [0.5])
    for q in (0.5, [0.5], np.array([0.5]), torch.tensor([0.5]), (0.5,)):
        np.testing.assert_array_equal(column_quantiles(x, q, backend="cpu").numpy(), ref)
    for bad in ([-0.1], [1.5], [float("nan")]):
        with pytest.raises(ValueError, match="q"):
            column_quantiles(x, bad)
    with pytest.raises(ValueError, match="q must be 1-D"):
        column_quantiles(x, [[0.5]])
    with pytest.raises(TypeError, match="q"):
        column_quantiles(x, "0.5")
    with pytest.raises(TypeError, match="x"):
        column_quantiles(x.numpy(), 0.5)
    with pytest.raises(ValueError, match="x must be 2-D"):
        column_quantiles(x[0], 0.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        column_quantiles(x.to(torch.int32), 0.5)
    assert column_quantiles(x, [], backend="cpu").shape == (0, 3)


def test_reference_agrees_with_torch_nanquantile():
    # torch.nanquantile is the peer on finite data (it differs from numpy next to +-inf)
    x = make(500, 6, torch.float64, special=False)
    x[torch.rand(500, 6) < 0.2] = float("nan")
    q = torch.tensor(Q, dtype=torch.float64)
    torch.testing.assert_close(column_quantiles_reference(x, q), torch.nanquantile(x, q, dim=0), rtol=1e-14, atol=0)


def test_opcheck():
    x = make(64, 5, torch.float32)
    q = torch.tensor([0.25, 0.5], dtype=torch.float64)
    for backend in ("torch", "cpu"):
        torch.library.opcheck(torch.ops.kernelflow.column_quantiles, (x, q, backend))


# ---- sketch --------------------------------------------------------------------------------

def _data(kind, n, rng):
    if kind == "normal":
        return rng.standard_normal((n, 3))
    if kind == "cauchy":
        return rng.standard_cauchy((n, 3))
    if kind == "ties":
        return rng.integers(0, 7, (n, 3)).astype(np.float64)
    if kind == "sorted":
        return np.sort(rng.standard_normal((n, 3)), axis=0)
    raise AssertionError(kind)


def _check_bound(sk: QuantileSketch, x: np.ndarray, q: np.ndarray) -> None:
    est = sk.quantile(q)
    bound = sk.rank_error_bound()
    for j in range(x.shape[1]):
        col = np.sort(x[:, j][~np.isnan(x[:, j])])
        n = col.size
        assert bound[j] <= sk.eps(n) * n + 1e-9
        t = q * (n - 1)
        lt = np.searchsorted(col, est[:, j], "left")  # values < estimate
        le = np.searchsorted(col, est[:, j], "right")  # values <= estimate
        assert (lt <= t + bound[j]).all() and (le >= t - bound[j]).all(), (j, lt - t, le - t, bound[j])


@pytest.mark.parametrize("kind", ["normal", "cauchy", "ties", "sorted"])
def test_sketch_chunked_and_merged_within_bound(kind):
    rng = np.random.default_rng(hash(kind) % 2**32)
    x = _data(kind, 60000, rng)
    x[rng.random(x.shape) < 0.05] = np.nan
    q = np.array([0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0])
    k = 64
    chunked = QuantileSketch(3, k=k)
    for c in np.array_split(x, 97):
        chunked.update(c)
    _check_bound(chunked, x, q)
    parts = []  # a tree of merges, like distributed ranks
    for c in np.array_split(x, 8):
        s = QuantileSketch(3, k=k)
        for cc in np.array_split(c, 5):
            s.update(torch.from_numpy(cc))
        parts.append(s)
    while len(parts) > 1:
        parts = [parts[i].merge(parts[i + 1]) for i in range(0, len(parts), 2)]
    _check_bound(parts[0], x, q)
    whole = QuantileSketch(3, k=k).update(x)
    _check_bound(whole, x, q)
    assert (chunked.n == (~np.isnan(x)).sum(0)).all()
    np.testing.assert_array_equal(chunked.quantile([0.0, 1.0]), np.nanquantile(x, [0.0, 1.0], axis=0))


def test_sketch_exact_below_k_and_edge_cases():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 2))
    x[:, 1] = np.nan
    s = QuantileSketch(2, k=64).update(x)
    assert s.rank_error_bound().tolist() == [0, 0] and s.eps(50) == 0.0
    got = s.quantile([0.0, 0.5, 1.0])
    assert np.isnan(got[:, 1]).all()
    col = np.sort(x[:, 0])
    assert got[1, 0] == np.quantile(col, 0.5) and got[0, 0] == col[0] and got[2, 0] == col[-1]  # exact: numpy's linear rule
    assert np.isnan(QuantileSketch(1).quantile(0.5)).all()
    with pytest.raises(ValueError, match="k must be"):
        QuantileSketch(2, k=1)
    with pytest.raises(ValueError, match="shape"):
        s.update(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="cannot merge"):
        s.merge(QuantileSketch(2, k=32))
    with pytest.raises(ValueError, match="q values"):
        s.quantile([1.5])


def test_sketch_json_roundtrip_with_inf():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5000, 2))
    x[::17, 0] = np.inf
    x[::19, 1] = -np.inf
    s = QuantileSketch(2, k=32).update(x)
    text = json.dumps(s.to_dict(), allow_nan=False)  # strict JSON
    s2 = QuantileSketch.from_dict(json.loads(text))
    q = [0.0, 0.3, 0.5, 0.99, 1.0]
    np.testing.assert_array_equal(s2.quantile(q), s.quantile(q))
    s.update(x[:100])
    s2.update(x[:100])
    np.testing.assert_array_equal(s2.quantile(q), s.quantile(q))
    with pytest.raises(ValueError):
        QuantileSketch.from_dict({"format": "other"})
