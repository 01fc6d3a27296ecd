"""Fused LayerNorm / RMSNorm (kernelflow.ops.norm, kernelflow.nn.norm, kernelflow.nn.patch) on
every backend against torch.nn.functional computed in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _helpers import interpreted
from kernelflow.nn.norm import LayerNorm, RMSNorm
from kernelflow.nn.patch import patch
from kernelflow.ops.norm import layer_norm, rms_norm

# (rtol, atol) against the float64 result cast to the dtype under test. float32: a few fp32
# roundings over rows of up to 65536 elements. 16-bit: the output is one rounding of an fp32
# value (2^-8 bfloat16, 2^-11 float16 relative), doubled for the Triton interpreter, which
# truncates on conversion, plus an absolute term for values near zero.
TOL = {torch.float32: (2e-5, 2e-5), torch.bfloat16: (1.6e-2, 1.6e-2), torch.float16: (2e-3, 2e-3)}
# dweight / dbias are fp32 sums over rows of fp32 products, whatever the input dtype.
TOL_WGRAD = (1e-4, 1e-4)
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


_interp = interpreted  # the Triton interpreter: keep grids tiny


def _close(got, ref, tol, what):
    assert got.shape == ref.shape, what
    torch.testing.assert_close(got.double().cpu(), ref.double().cpu(), rtol=tol[0], atol=tol[1], msg=lambda m: f"{what}: {m}")


def _run(kind, device, backend, x, w, b, normalized_shape, eps=None):
    """(y, dy, grads) of kernelflow's op; grads for x, w, b (None where absent)."""
    # detach() aliases the caller's storage (same offset, so misalignment survives) as a fresh leaf
    leaves = [t.detach().to(device).requires_grad_() if t is not None else None for t in (x, w, b)]
    xx, ww, bb = leaves
    if kind == "layer":
        y = layer_norm(xx, normalized_shape, ww, bb, eps=1e-5 if eps is None else eps, backend=backend)
    else:
        y = rms_norm(xx, normalized_shape, ww, eps=eps, backend=backend)
    g = torch.Generator().manual_seed(7)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype).to(device)
    y.backward(dy)
    return y, dy, [t.grad if t is not None else None for t in leaves]


def _ref(kind, x, w, b, normalized_shape, dy, eps=None):
    leaves = [t.detach().cpu().double().requires_grad_() if t is not None else None for t in (x, w, b)]
    xx, ww, bb = leaves
    if kind == "layer":
        y = F.layer_norm(xx, tuple(normalized_shape), ww, bb, 1e-5 if eps is None else eps)
    else:
        y = F.rms_norm(xx, tuple(normalized_shape), ww, torch.finfo(x.dtype).eps if eps is None else eps)
    y.backward(dy.detach().cpu().double())
    return y, [t.grad if t is not None else None for t in leaves]


def _check(kind, device, backend, x, w, b, normalized_shape, eps=None):
    y, dy, grads = _run(kind, device, backend, x, w, b, normalized_shape, eps)
    yr, gr = _ref(kind, x, w, b, normalized_shape, dy, eps)
    tol = TOL[x.dtype]
    assert y.dtype == x.dtype and y.device.type == device
    _close(y, yr, tol, "y")
    _close(grads[0], gr[0], tol, "dx")
    for name, got, ref, p in (("dweight", grads[1], gr[1], w), ("dbias", grads[2], gr[2], b)):
        if p is None:
            continue
        assert got.dtype == p.dtype, name
        _close(got, ref, TOL_WGRAD if p.dtype == torch.float32 else TOL[p.dtype], name)


def _data(rows, hidden, dtype, w_dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, hidden, generator=g, dtype=torch.float64) * 2 + 0.5).to(dtype)
    w = (torch.randn(hidden, generator=g, dtype=torch.float64) * 0.5 + 1).to(w_dtype)
    b = (torch.randn(hidden, generator=g, dtype=torch.float64) * 0.1).to(w_dtype)
    return x, w, b


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hidden", [1, 127, 1000, 4097])
def test_matches_torch(device_backend, kind, dtype, hidden):
    device, backend = device_backend
    if _interp(device, backend) and hidden > 1000:
        pytest.skip("Triton interpreter cases stay tiny")
    rows = 3 if _interp(device, backend) else 33
    x, w, b = _data(rows, hidden, dtype)
    _check(kind, device, backend, x, w, b if kind == "layer" else None, (hidden,))


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_huge_hidden(device_backend, kind):
    device, backend = device_backend
    if backend not in ("cpu", "torch") and device == "cpu":
        pytest.skip("65536-wide rows only on the C++ and reference backends without a GPU")
    x, w, b = _data(2, 65536, torch.float32, seed=3)
    _check(kind, device, backend, x, w, b if kind == "layer" else None, (65536,))


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_params_in_input_dtype(device_backend, kind, dtype):
    device, backend = device_backend
    x, w, b = _data(3, 40, dtype, w_dtype=dtype, seed=4)
    _check(kind, device, backend, x, w, b if kind == "layer" else None, (40,))


@pytest.mark.parametrize("affine", ["none", "no_bias"])
def test_without_affine_or_bias(device_backend, affine):
    device, backend = device_backend
    x, w, b = _data(3, 100, torch.float32, seed=5)
    w = None if affine == "none" else w
    _check("layer", device, backend, x, w, None, (100,))
    _check("rms", device, backend, x, w, None, (100,), eps=1e-6)


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_3d_input_and_multi_dim_shape(device_backend, kind):
    device, backend = device_backend
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 3, 16, generator=g)
    w, b = torch.randn(16, generator=g), torch.randn(16, generator=g)
    _check(kind, device, backend, x, w, b if kind == "layer" else None, (16,))
    w2, b2 = torch.randn(3, 16, generator=g), torch.randn(3, 16, generator=g)
    _check(kind, device, backend, x, w2, b2 if kind == "layer" else None, (3, 16))
    # a non-contiguous input is copied once and gives the same result
    xt = x.transpose(0, 1)
    y = layer_norm(xt.to(device), (16,), backend=backend) if kind == "layer" else rms_norm(xt.to(device), (16,), backend=backend)
    _close(y, layer_norm(xt.contiguous(), (16,), backend="torch") if kind == "layer"
           else rms_norm(xt.contiguous(), (16,), backend="torch"), TOL[torch.float32], "y")


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_misaligned_storage(device_backend, kind, dtype):
    # contiguous but one element past a 16-byte boundary: the CUDA kernels drop to scalar loads
    device, backend = device_backend
    x, w, b = _data(3, 64, dtype, seed=11)
    xm = torch.empty(3 * 64 + 1, dtype=dtype, device=device)[1:].view(3, 64)
    xm.copy_(x)
    assert xm.data_ptr() % 16 != 0
    _check(kind, device, backend, xm, w, b if kind == "layer" else None, (64,))


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_nan_stays_in_its_row(device_backend, kind):
    device, backend = device_backend
    x, w, b = _data(3, 50, torch.float32, seed=8)
    x[1, 7] = float("nan")
    xx = x.to(device)
    y = layer_norm(xx, 50, w.to(device), b.to(device), backend=backend) if kind == "layer" \
        else rms_norm(xx, 50, w.to(device), backend=backend)
    y = y.cpu()
    assert torch.isnan(y[1]).all()
    assert torch.isfinite(y[[0, 2]]).all()
    ref = layer_norm(x, 50, w, b, backend="torch") if kind == "layer" else rms_norm(x, 50, w, backend="torch")
    _close(y[[0, 2]], ref[[0, 2]], TOL[torch.float32], "finite rows")


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_empty_batch(device_backend, kind):
    device, backend = device_backend
    x = torch.empty(0, 4, 8, device=device, requires_grad=True)
    w = torch.ones(8, device=device, requires_grad=True)
    b = torch.zeros(8, device=device, requires_grad=True)
    y = layer_norm(x, 8, w, b, backend=backend) if kind == "layer" else rms_norm(x, 8, w, backend=backend)
    assert y.shape == (0, 4, 8)
    y.sum().backward()
    assert x.grad.shape == x.shape and torch.equal(w.grad.cpu(), torch.zeros(8))


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_weight_grads_are_deterministic(device_backend, kind):
    device, backend = device_backend
    rows = 3 if _interp(device, backend) else 300
    x, w, b = _data(rows, 96, torch.float32, seed=10)
    b = b if kind == "layer" else None
    first = _run(kind, device, backend, x, w, b, (96,))[2]
    again = _run(kind, device, backend, x, w, b, (96,))[2]
    for g1, g2 in zip(first, again):
        if g1 is not None:
            assert torch.equal(g1, g2)  # per-block partial sums, no atomics: bitwise reproducible


def test_argument_errors():
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match="normalized_shape"):
        layer_norm(x, 7)
    with pytest.raises(ValueError, match="weight"):
        layer_norm(x, 8, torch.ones(7))
    with pytest.raises(TypeError, match="x must be"):
        rms_norm(x.to(torch.int64), 8)
    with pytest.raises(TypeError, match="weight"):
        rms_norm(x, 8, torch.ones(8, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be"):
        layer_norm([1.0], 1)


def test_opcheck():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(5, 12, generator=g)
    w, b = torch.randn(12, generator=g), torch.randn(12, generator=g)
    dy = torch.randn(5, 12, generator=g)
    ops = torch.ops.kernelflow
    for backend in ("cpu", "torch"):
        y, mean, rstd = ops.layer_norm_fwd(x, w, b, 1e-5, backend)
        _, rstd_rms = ops.rms_norm_fwd(x, w, 1e-6, backend)
        torch.library.opcheck(ops.layer_norm_fwd, (x.requires_grad_(), w.requires_grad_(), b.requires_grad_(), 1e-5, backend))
        torch.library.opcheck(ops.rms_norm_fwd, (x, w, 1e-6, backend))
        torch.library.opcheck(ops.layer_norm_fwd, (x, None, None, 1e-5, backend))
        x, w, b = x.detach(), w.detach(), b.detach()
        torch.library.opcheck(ops.layer_norm_bwd, (dy, x, w, mean, rstd, True, backend))
        torch.library.opcheck(ops.layer_norm_bwd, (dy, x, None, mean, rstd, False, backend))
        torch.library.opcheck(ops.rms_norm_bwd, (dy, x, w, rstd_rms, True, backend))


def test_torch_compile_fullgraph():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), LayerNorm(16, backend="cpu"), nn.GELU(), nn.Linear(16, 4))
    x = torch.randn(6, 8)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    y = compiled(x)
    y.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    y2 = model(x)
    y2.sum().backward()
    torch.testing.assert_close(y, y2)
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_modules_match_torch_and_keep_state_dict_keys():
    torch.manual_seed(1)
    for ours, theirs in ((LayerNorm(16, bias=False, backend="cpu"), nn.LayerNorm(16, bias=False)),
                         (RMSNorm([2, 16], eps=1e-6, backend="torch"), nn.RMSNorm([2, 16], eps=1e-6)),
                         (LayerNorm(16, elementwise_affine=False), nn.LayerNorm(16, elementwise_affine=False))):
        assert list(ours.state_dict()) == list(theirs.state_dict())
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(3, 2, 16)
        torch.testing.assert_close(ours(x), theirs(x), rtol=2e-5, atol=2e-5)
    with pytest.raises(ValueError, match="backend"):
        LayerNorm(4, backend="nope")


def test_patch_small_transformer():
    torch.manual_seed(2)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(32)
            self.fc = nn.Linear(32, 32)
            self.norm2 = nn.RMSNorm(32)

        def forward(self, x):
            return x + self.norm2(self.fc(self.norm1(x)))

    model = nn.Sequential(nn.Linear(8, 32), Block(), Block(), nn.LayerNorm(32), nn.Linear(32, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(5, 7, 8)
    before = model(x)
    keys = list(model.state_dict())
    params = {n: p for n, p in model.named_parameters()}
    replaced = patch(model, backend="cpu")
    assert replaced == [("1.norm1", "LayerNorm"), ("1.norm2", "RMSNorm"), ("2.norm1", "LayerNorm"),
                        ("2.norm2", "RMSNorm"), ("3", "LayerNorm")]
    assert isinstance(model[3], LayerNorm) and isinstance(model[1].norm2, RMSNorm)
    assert list(model.state_dict()) == keys
    assert all(p is params[n] for n, p in model.named_parameters())
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)
    assert patch(model) == []  # already kernelflow's


def test_backward_with_expanded_one_element_gradient(device_backend):
    # y.sum().backward() on a 1x1 output hands the backward an expanded (stride-0) gradient
    device, backend = device_backend
    from kernelflow.ops import layer_norm, rms_norm

    x = torch.randn(1, 1, device=device, requires_grad=True)
    w = torch.ones(1, device=device, requires_grad=True)
    (layer_norm(x, (1,), w, None, backend=backend) + rms_norm(x, (1,), w, backend=backend)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
