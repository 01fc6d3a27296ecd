"""numeric_transform on every backend against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from _helpers import OUT_RTOL, assert_close, hostile_matrix, opcheck_backends
from kernelflow.ops import numeric_transform, numeric_transform_reference, transform_params

def params_for(cols, seed=0):
    g = np.random.default_rng(seed)
    return transform_params(
        cols,
        fill=g.normal(size=cols),
        lo=np.where(g.random(cols) < 0.5, -np.inf, -1 - g.random(cols) * 2),  # lo <= -1 < 1 <= hi
        hi=np.where(g.random(cols) < 0.5, np.inf, 1 + g.random(cols) * 2),
        shift=g.normal(size=cols),
        inv_scale=g.uniform(0.1, 3, size=cols),
        offset=g.normal(size=cols),
    )


def make(rows, cols, dtype, seed=0):
    return hostile_matrix(rows, cols, dtype, seed, scale=3.0)  # 10% NaN, 2% each of +-inf


def check(got, ref, dt):
    assert_close(got, ref, OUT_RTOL[dt], dtype=dt)


@pytest.mark.parametrize("in_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(0, 4), (1, 1), (3, 5), (1000, 32), (257, 7)])
def test_matches_reference(device_backend, in_dtype, out_dtype, shape):
    device, backend = device_backend
    x = make(*shape, dtype=in_dtype).to(device)
    p = torch.as_tensor(params_for(shape[1]))
    got = numeric_transform(x, p, out_dtype, backend=backend)
    check(got, numeric_transform_reference(x, p, out_dtype), out_dtype)


@pytest.mark.parametrize("layout", ["fortran", "strided_rows", "strided_cols"])
def test_non_contiguous(device_backend, layout):
    device, backend = device_backend
    base = make(300, 16, torch.float32, seed=2).to(device)
    x = {"fortran": base.t().contiguous().t(), "strided_rows": base[::2], "strided_cols": base[:, 1::3]}[layout]
    p = torch.as_tensor(params_for(x.shape[1], seed=1))
    check(numeric_transform(x, p, backend=backend), numeric_transform_reference(x, p), torch.float32)


def test_nan_fill_keeps_nan_and_no_clip_keeps_inf(device_backend):
    device, backend = device_backend
    x = torch.tensor([[float("nan"), float("inf")], [1.0, float("-inf")]], device=device)
    p = transform_params(2)  # identity: NaN fill, no clip
    y = numeric_transform(x, p, backend=backend).cpu()
    assert torch.isnan(y[0, 0]) and y[0, 1] == float("inf") and y[1, 0] == 1.0 and y[1, 1] == float("-inf")
    p = transform_params(2, fill=0.0, lo=-5, hi=5)
    y = numeric_transform(x, p, backend=backend).cpu()
    assert y.tolist() == [[0.0, 5.0], [1.0, -5.0]]


def test_huge_values_saturate_in_16_bit(device_backend):
    device, backend = device_backend
    x = torch.tensor([[1e30, -1e30, 1e-40]], dtype=torch.float32, device=device)
    y = numeric_transform(x, transform_params(3), "float16", backend=backend).cpu()
    assert y[0, 0] == float("inf") and y[0, 1] == float("-inf") and y[0, 2] == 0.0


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(0, 50), cols=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_property_cpu(rows, cols, seed):
    x = make(rows, cols, torch.float32, seed=seed)
    p = torch.as_tensor(params_for(cols, seed=seed))
    check(numeric_transform(x, p, backend="cpu"), numeric_transform_reference(x, p), torch.float32)


def test_gradient_matches_reference():
    x = make(50, 4, torch.float64, seed=4).requires_grad_(True)
    p = torch.as_tensor(params_for(4, seed=4))
    y = numeric_transform(x, p, "float64", backend="cpu")
    y.sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    fill, lo, hi, shift, inv, off = p.unbind(0)
    v = torch.where(torch.isnan(xr), fill, xr)
    v = torch.where(v < lo, lo, torch.where(v > hi, hi, v))  # a value on a bound keeps its gradient
    ((v - shift) * inv + off).sum().backward()
    assert torch.allclose(torch.nan_to_num(x.grad), torch.nan_to_num(xr.grad))


def test_bad_input():
    x = torch.zeros((3, 2))
    with pytest.raises(ValueError, match=r"params must have shape \(6, 2\)"):
        numeric_transform(x, torch.zeros(6, 3))
    with pytest.raises(ValueError, match="out_dtype must be one of"):
        numeric_transform(x, transform_params(2), "int8")
    with pytest.raises(ValueError, match="inv_scale must be a scalar or have 2 entries"):
        transform_params(2, inv_scale=[1, 2, 3])
    with pytest.raises(ValueError, match="lo must not exceed hi"):
        transform_params(2, lo=[0, 3], hi=[1, 2])


def test_opcheck():
    x = make(32, 3, torch.float32).clamp(-2, 2)
    p = torch.as_tensor(params_for(3))
    opcheck_backends(torch.ops.kernelflow.numeric_transform, (x, p, torch.float32))
    opcheck_backends(torch.ops.kernelflow.numeric_transform, lambda: (x.double().requires_grad_(), p, torch.float64))


def test_torch_compile_fullgraph():
    x = make(64, 3, torch.float32)
    p = torch.as_tensor(params_for(3))
    f = torch.compile(lambda t: numeric_transform(t, p, backend="cpu") * 2, fullgraph=True, backend="eager")
    check(f(x) / 2, numeric_transform_reference(x, p), torch.float32)


def test_parameters_keep_float64_range(device_backend):
    """fill = 1e300 with inv_scale = 1e-300 imputes NaN as 1.0 (float32 parameters would give inf * 0);
    shifts and scales outside the float32 range work for float32 input and output."""
    device, backend = device_backend
    x = torch.tensor([[float("nan"), 2.0], [3.0, float("nan")]], dtype=torch.float32, device=device)
    p = transform_params(2, fill=[1e300, 1e-310], inv_scale=[1e-300, 1e300], shift=0.0)
    y = numeric_transform(x, p, backend=backend).cpu()
    ref = numeric_transform_reference(x.cpu(), torch.as_tensor(p))
    assert y[0, 0].item() == 1.0
    assert torch.equal(torch.isnan(y), torch.isnan(ref))
    assert torch.allclose(y, ref, rtol=1e-6, atol=0)
    p2 = transform_params(1, shift=1e300, inv_scale=1e-300, offset=0.0)
    y2 = numeric_transform(torch.tensor([[3e38]], device=device), p2, backend=backend).cpu()
    assert y2.item() == pytest.approx(float(numeric_transform_reference(torch.tensor([[3e38]]), torch.as_tensor(p2))),
                                      rel=1e-6)


def test_out_overlapping_x_is_refused_and_in_place_is_exact(device_backend):
    device, backend = device_backend
    base = make(40, 12, torch.float32, seed=9).to(device)
    p = torch.as_tensor(params_for(6, seed=9))
    m = base.clone()
    with pytest.raises(ValueError, match="out overlaps x"):
        numeric_transform(m[:, :6], p, out=m[:, 3:9], backend=backend)
    with pytest.raises(ValueError, match="out overlaps x"):
        numeric_transform(m[1:, :6], p, out=m[:-1, :6], backend=backend)  # shifted by one row
    # disjoint column slices of one matrix are fine
    want = numeric_transform_reference(m[:, :6], p)
    numeric_transform(m[:, :6], p, out=m[:, 6:], backend=backend)
    check(m[:, 6:], want, torch.float32)
    # exactly in place
    z = base[:, :6].clone()
    want = numeric_transform_reference(z, p)
    assert numeric_transform(z, p, out=z, backend=backend) is z
    check(z, want, torch.float32)
