"""column_stats on every backend against the float64 reference, numpy and Chan merges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from _helpers import STRIDED_LAYOUTS, assert_stats_close, hostile_matrix, opcheck_backends, strided
from kernelflow.ops import column_stats, column_stats_reference, merge_stats


def make(rows, cols, dtype, seed=0, special=True, scale=1.0):
    """N(3, scale) values; with ``special``, 5% NaN and 1% each of +inf and -inf."""
    return hostile_matrix(rows, cols, dtype, seed, scale=scale, shift=3.0, nan=0.05 if special else 0.0,
                          inf=0.01 if special else 0.0)


check = assert_stats_close


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(0, 3), (1, 1), (1, 5), (257, 3), (3000, 37), (5000, 1), (100, 0)])
def test_matches_reference(device_backend, dtype, shape):
    device, backend = device_backend
    x = make(*shape, dtype=dtype).to(device)
    check(column_stats(x, backend=backend), column_stats_reference(x), dtype)


@pytest.mark.parametrize("layout", STRIDED_LAYOUTS)
def test_non_contiguous(device_backend, layout):
    device, backend = device_backend
    x = strided(make(600, 20, torch.float32, seed=1).to(device), layout)
    check(column_stats(x, backend=backend), column_stats_reference(x), torch.float32)


def test_all_nan_and_constant_columns(device_backend):
    device, backend = device_backend
    x = torch.full((500, 3), 7.25, dtype=torch.float32)
    x[:, 1] = float("nan")
    x[:, 2] = float("inf")
    s = column_stats(x.to(device), backend=backend).cpu()
    assert s[0].tolist() == [500, 0, 0] and s[1].tolist() == [0, 500, 0]
    assert s[2, 0] == 7.25 and s[3, 0] == 0.0
    assert s[4, 1] == float("inf") and s[5, 1] == float("-inf")


def test_huge_and_denormal_values(device_backend):
    device, backend = device_backend
    x = torch.tensor([[3e38, 1e-40], [-3e38, 2e-40], [1e38, 0.0]], dtype=torch.float32)
    s = column_stats(x.to(device), backend=backend).cpu()
    ref = column_stats_reference(x)
    # every backend accumulates in float64, float32 input included: 3e38-sized sums and squares
    # stay finite and denormal deviations do not flush to 0
    assert torch.equal(s[4], ref[4]) and torch.equal(s[5], ref[5])
    assert torch.isfinite(s).all()
    assert torch.allclose(s[2:4], ref[2:4], rtol=1e-12, atol=0)


def test_float32_input_accumulates_in_float64(device_backend):
    device, backend = device_backend
    x = torch.tensor([[1e20, 3e38, 1e-40], [-1e20, 3e38, 3e-40], [0.0, 3e38, 2e-40]], dtype=torch.float32)
    s = column_stats(x.to(device), backend=backend).cpu()
    ref = column_stats_reference(x)
    assert torch.isfinite(s[2:4]).all()
    assert s[3, 0].item() == pytest.approx(2 * float(np.float32(1e20)) ** 2, rel=1e-12)  # fp32 squares: inf
    assert s[2, 1].item() == pytest.approx(float(np.float32(3e38)), rel=1e-12)  # fp32 sums would be inf
    assert s[3, 2].item() > 0  # fp32 squares of denormals flush to 0
    assert torch.allclose(s[2:4], ref[2:4], rtol=1e-9, atol=0)


def test_standard_scaler_float32_huge_values_matches_sklearn():
    from sklearn.preprocessing import StandardScaler as SkScaler

    from kernelflow.preprocessing import StandardScaler

    X = np.array([[1e20], [-1e20], [0.0]], np.float32)
    ours, sk = StandardScaler().fit(X), SkScaler().fit(X)
    np.testing.assert_allclose(ours.scale_, sk.scale_, rtol=1e-6)
    np.testing.assert_allclose(ours.mean_, sk.mean_, atol=1e13)


def test_matches_numpy(device_backend):
    device, backend = device_backend
    x = make(2048, 9, torch.float64, seed=3, special=False, scale=1e3)
    s = column_stats(x.to(device), backend=backend).cpu().numpy()
    xn = x.numpy()
    np.testing.assert_allclose(s[2], xn.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s[3] / s[0], xn.var(0), rtol=1e-12)


def test_large_offset_is_stable(device_backend):
    # values 1e8 + N(0,1): a naive sum-of-squares in fp64 would lose all digits of the variance
    device, backend = device_backend
    x = (torch.randn(4096, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) + 1e8)
    s = column_stats(x.to(device), backend=backend).cpu()
    np.testing.assert_allclose(s[3] / s[0], x.numpy().var(0), rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 300), cols=st.integers(1, 6), split=st.integers(0, 300), seed=st.integers(0, 2**16))
def test_chunked_merge_equals_one_shot(rows, cols, split, seed):
    split = min(split, rows)
    x = make(rows, cols, torch.float64, seed=seed)
    whole = column_stats(x, backend="torch")
    merged = merge_stats(column_stats(x[:split], backend="torch"), column_stats(x[split:], backend="torch"))
    check(merged, whole, torch.float64)
    merged_np = merge_stats(whole.numpy(), column_stats_reference(x[:0]).numpy())
    np.testing.assert_array_equal(merged_np, whole.numpy())


def test_bad_input():
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        column_stats(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        column_stats(torch.zeros(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        column_stats(torch.zeros((2, 2), dtype=torch.int32))
    with pytest.raises(ValueError, match="backend must be one of"):
        column_stats(torch.zeros((2, 2)), backend="gpu")
    with pytest.raises(kernelflow_unavailable(), match="backend 'cuda' is unavailable"):
        column_stats(torch.zeros((2, 2)), backend="cuda")


def kernelflow_unavailable():
    from kernelflow import BackendUnavailableError

    return BackendUnavailableError


def test_opcheck():
    opcheck_backends(torch.ops.kernelflow.column_stats, (make(64, 5, torch.float32),))
