"""The fused whole-table kernel on every backend against its float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _helpers import assert_close
from kernelflow.ops import TableSpec, table_transform, table_transform_reference, transform_params


def make_spec(Fn=3, seed=0):
    g = np.random.default_rng(seed)
    p = np.vstack([transform_params(Fn, fill=g.normal(size=Fn), lo=[-1.5] + [-np.inf] * (Fn - 1), hi=[1.5] + [np.inf] * (Fn - 1),
                                    shift=g.normal(size=Fn) * 100, inv_scale=g.uniform(0.5, 2, Fn), offset=g.normal(size=Fn)),
                   [[0, 1, 2][j % 3] for j in range(Fn)]])
    cats = [dict(off=Fn + 1, width=4, mode="onehot", slots=[0, 1, 2, 3, -1], unknown_slot=3),
            dict(off=Fn + 5, width=2, mode="onehot", slots=[-1, 0, 1], unknown_slot=-1),
            dict(off=Fn + 7, width=1, mode="ordinal", slots=[0, 1, 2], unknown_value=-7.0)]
    return TableSpec.build(Fn + 8, p, list(range(Fn)), ind_src=[1], ind_out=[Fn], cats=cats)


def make_inputs(N, Fn=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(N, Fn, generator=g, dtype=torch.float64) * 2 + 100).to(dtype)
    if N:
        x[torch.rand(N, Fn, generator=g) < 0.15] = float("nan")
        x[:, 1:3] = x[:, 1:3].abs()  # log1p / sqrt columns get non-negative values (NaN kept)
    codes = torch.randint(-2, 6, (N, 3), generator=g, dtype=torch.int32)
    return x, codes


# fp32 arithmetic (~1e-7 relative) vs float64; 16-bit outputs may differ by one unit in the last
# place (the Triton interpreter truncates to bfloat16)
RTOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("N", [0, 1, 37])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.float64])
def test_matches_reference(device_backend, N, in_dtype, out_dtype):
    device, backend = device_backend
    spec = make_spec().to(device)
    x, codes = make_inputs(N, dtype=in_dtype)
    x, codes = x.to(device), codes.to(device)
    out = torch.full((N, spec.W), 12345.0, dtype=out_dtype, device=device)  # poisoned: every element must be written
    table_transform(x, codes, spec, out=out, backend=backend)
    ref = table_transform_reference(x, codes, spec, torch.float64)
    assert_close(out, ref, RTOL[out_dtype])


def test_strided_inputs_and_output_slice(device_backend):
    device, backend = device_backend
    spec = make_spec().to(device)
    x, codes = make_inputs(40)
    xs = x.repeat_interleave(2, dim=1)[:, ::2].to(device)  # column stride 2
    wide = torch.zeros(40, spec.W + 5, device=device)
    out = table_transform(xs, codes.t().contiguous().t().to(device), spec, out=wide[:, 2:2 + spec.W], backend=backend)
    ref = table_transform_reference(x, codes, spec, torch.float32)
    assert torch.allclose(torch.nan_to_num(out.cpu()), torch.nan_to_num(ref), rtol=2e-6, atol=1e-5)
    assert torch.all(wide[:, :2] == 0) and torch.all(wide[:, 2 + spec.W:] == 0)


def test_spec_validation():
    p = np.vstack([transform_params(2), np.zeros((1, 2))])
    with pytest.raises(ValueError, match="written twice"):
        TableSpec.build(3, p, [0, 0])
    with pytest.raises(ValueError, match="written by nothing"):
        TableSpec.build(3, p, [0, 1])
    with pytest.raises(ValueError, match="outside"):
        TableSpec.build(2, p, [0, 2])
    with pytest.raises(ValueError, match="slot beyond"):
        TableSpec.build(4, p, [0, 1], cats=[dict(off=2, width=2, mode="onehot", slots=[0, 2])])
    spec = make_spec()
    x, codes = make_inputs(4)
    with pytest.raises(ValueError, match="codes must be a tensor of shape"):
        table_transform(x, codes[:, :2], spec)
    with pytest.raises(ValueError, match="numeric columns"):
        table_transform(x[:, :2], codes, spec)


def test_opcheck():
    spec = make_spec()
    x, codes = make_inputs(8)
    out = torch.empty(8, spec.W)
    for backend in ("torch", "cpu"):
        torch.library.opcheck(torch.ops.kernelflow.table_transform, (x, codes, spec.tensors(), spec.W, out, backend))


@pytest.mark.parametrize("lam", [0.0, 2.0, -0.7, 0.5, 1e-20, 2 - 1e-20])
def test_power_transforms_match_scipy(device_backend, lam):
    from scipy import special, stats

    device, backend = device_backend
    g = np.random.default_rng(3)
    x = np.concatenate([g.normal(size=40) * 3, [0.0, -0.0, 1e-30, np.nan]])
    xp = np.abs(x) + 0.1  # Box-Cox needs positive data
    params = np.vstack([transform_params(2), [[3, 4]], [[lam, lam]]])
    spec = TableSpec.build(2, params, [0, 1]).to(device)
    X = torch.tensor(np.stack([x, xp], 1), dtype=torch.float64, device=device)
    out = table_transform(X, torch.zeros((len(x), 0), dtype=torch.int32), spec, out_dtype="float64", backend=backend).cpu().numpy()
    fin = ~np.isnan(x)
    np.testing.assert_allclose(out[fin, 0], stats.yeojohnson(x[fin], lmbda=lam), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(out[fin, 1], special.boxcox(xp[fin], lam), rtol=1e-6, atol=1e-12)
    assert np.isnan(out[~fin, 0]).all()
