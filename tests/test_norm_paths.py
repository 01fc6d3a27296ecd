"""Every CPU code path (avx512 / avx2 / portable, forced with kernelflow._C.set_cpu_isa) of the
LayerNorm / RMSNorm and distillation-loss kernels against float64 torch, with the row lengths that
hit the vector tails and the 256-value sum chunks, 16-bit data, and hostile rows: NaN, inf,
values whose fp32 squares overflow, tiny values with eps = 0, constant rows, one column, no rows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernelflow._array import mat
from kernelflow._ext import require_ext
from kernelflow.ops.distill import distill_loss, distill_loss_reference
from kernelflow.ops.norm import layer_norm, rms_norm

C = require_ext()
_ORDER = ["portable", "avx2", "avx512"]
LEVELS = [lv for lv in _ORDER if _ORDER.index(lv) <= _ORDER.index(C.cpu_isa_detected())]

# (rtol, atol) against float64 cast to the dtype: fp32 a few roundings; 16-bit one output rounding
TOL = {torch.float32: (2e-5, 2e-5), torch.bfloat16: (1.6e-2, 1.6e-2), torch.float16: (2e-3, 2e-3)}
TOL_WGRAD = (1e-4, 1e-4)  # fp32 sums over rows of fp32 products


@pytest.fixture(params=LEVELS)
def level(request):
    C.set_cpu_isa(request.param)
    yield request.param
    C.set_cpu_isa("auto")


def _close(got, ref, tol, what):
    torch.testing.assert_close(got.double(), ref.double(), rtol=tol[0], atol=tol[1], equal_nan=True,
                               msg=lambda m: f"{what}: {m}")


def _check(kind, x, w, b, eps, dy=None, tol=None):
    """kernelflow's cpu op (y and the grads of x, w, b) against F.* in float64."""
    h = x.shape[-1]
    leaves = [t.clone().requires_grad_() if t is not None else None for t in (x, w, b)]
    refs = [t.double().requires_grad_() if t is not None else None for t in (x, w, b)]
    if kind == "layer":
        y = layer_norm(leaves[0], (h,), leaves[1], leaves[2], eps=eps, backend="cpu")
        yr = F.layer_norm(refs[0], (h,), refs[1], refs[2], eps)
    else:
        y = rms_norm(leaves[0], (h,), leaves[1], eps=eps, backend="cpu")
        yr = F.rms_norm(refs[0], (h,), refs[1], eps)
    if dy is None:
        dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64).to(x.dtype)
    y.backward(dy)
    yr.backward(dy.double())
    tol = tol or TOL[x.dtype]
    assert y.dtype == x.dtype
    _close(y, yr, tol, "y")
    _close(leaves[0].grad, refs[0].grad, tol, "dx")
    for name, got, ref in (("dweight", leaves[1], refs[1]), ("dbias", leaves[2], refs[2])):
        if got is not None:
            _close(got.grad, ref.grad, TOL_WGRAD, name)


def _data(rows, h, dtype, seed=0, scale=2.0, shift=0.5):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, h, generator=g, dtype=torch.float64) * scale + shift).to(dtype)
    w = (torch.randn(h, generator=g, dtype=torch.float64) * 0.5 + 1).float()
    b = (torch.randn(h, generator=g, dtype=torch.float64) * 0.1).float()
    return x, w, b


def test_path_names_follow_the_forced_level(level):
    assert C.norm_cpu_path() == level
    assert C.distill_cpu_path() == level
    assert C.cpu_isa() == level


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("h", [1, 15, 16, 17, 255, 256, 257, 1000, 4099])
def test_every_path_matches_float64(level, kind, dtype, h):
    x, w, b = _data(7 if h > 1000 else 19, h, dtype, seed=h)
    _check(kind, x, w, b if kind == "layer" else None, 1e-5)


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("affine", ["none", "weight"])
def test_without_affine(level, kind, affine):
    x, w, _ = _data(9, 300, torch.float32)
    _check(kind, x, w if affine == "weight" else None, None, 1e-5)


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_hostile_rows(level, kind):
    h = 300
    x, w, b = _data(8, h, torch.float32, seed=1)
    x[0, 7] = float("nan")  # NaN stays in its row
    x[1, 3] = float("inf")  # an infinite value makes its row NaN, as in float64
    x[2] = x[2] * 1e30  # fp32 squares overflow: the row is recomputed in fp64
    x[3] = 4.25  # constant row: var 0, y = bias
    x[4] = x[4] + 300.0  # mean 150x the spread: deviations taken from the fp32 mean on a second read
    x[5] = torch.finfo(torch.float32).tiny * 3  # denormal-adjacent
    _check(kind, x, w, b if kind == "layer" else None, 1e-5)


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_tiny_values_with_eps_zero(level, kind):
    # squares of 1e-25 underflow fp32: the fp64 recompute keeps the normalised values. rtol 1e-3:
    # dx ~ rstd = 1e25 comes out of the cancelling fp32 sum g - mean(g) - xhat * mean(g * xhat)
    x, w, b = _data(4, 257, torch.float32, seed=2, scale=1.0, shift=0.0)
    x = x * 1e-25
    _check(kind, x, w, b if kind == "layer" else None, 0.0, tol=(1e-3, 1e-4))


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_one_column_and_no_rows(level, kind):
    x, w, b = _data(6, 1, torch.float32)
    _check(kind, x, w, b if kind == "layer" else None, 1e-5)
    x0, w0, b0 = _data(0, 64, torch.float32)
    _check(kind, x0, w0, b0 if kind == "layer" else None, 1e-5)


def test_weight_grads_do_not_depend_on_the_thread_count(level):
    x, w, b = _data(300, 130, torch.float32, seed=4)
    dy = torch.randn(300, 130, generator=torch.Generator().manual_seed(1))
    grads = []
    n0 = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            ww, bb = w.clone().requires_grad_(), b.clone().requires_grad_()
            layer_norm(x, (130,), ww, bb, backend="cpu").backward(dy)
            grads.append((ww.grad, bb.grad))
    finally:
        torch.set_num_threads(n0)
    for gw, gb in grads[1:]:
        assert torch.equal(gw, grads[0][0]) and torch.equal(gb, grads[0][1])


@pytest.mark.parametrize("blocks", [1, 3, 64])
def test_backward_overwrites_partial_rows(level, blocks):
    # the kernel writes every partial-sum row, so garbage in them must not leak into the result
    rows, h = 100, 70
    x, w, _ = _data(rows, h, torch.float32, seed=6)
    dy = torch.randn(rows, h, generator=torch.Generator().manual_seed(2))
    y, mean, rstd = torch.empty_like(x), torch.empty(rows), torch.empty(rows)
    C.norm_fwd_cpu(mat(x), w.data_ptr(), 0, 1e-5, False, mat(y), mean.data_ptr(), rstd.data_ptr())
    out = []
    for fill in (0.0, float("nan")):
        dx = torch.empty_like(x)
        dwp, dbp = torch.full((blocks, h), fill), torch.full((blocks, h), fill)
        C.norm_bwd_cpu(mat(dy), mat(x), w.data_ptr(), mean.data_ptr(), rstd.data_ptr(), False, mat(dx),
                       dwp.data_ptr(), dbp.data_ptr(), blocks)
        out.append((dx, dwp.sum(0), dbp.sum(0)))
    for a, b in zip(*out):
        assert torch.equal(a, b)
    xhat = (x.double() - mean.double()[:, None]) * rstd.double()[:, None]
    _close(out[0][1], (dy.double() * xhat).sum(0), TOL_WGRAD, "dweight")
    _close(out[0][2], dy.double().sum(0), TOL_WGRAD, "dbias")


# ----------------------------------------------------------------------------- distillation loss

def _distill_check(s, t, y, T=2.0, reduction="mean", atol=2e-5, gatol=2e-6):
    sr = s.clone().requires_grad_()
    got = distill_loss(sr, t, y, temperature=T, alpha=0.5, reduction=reduction, backend="cpu")
    sd = s.double().requires_grad_()
    ref = distill_loss_reference(sd, t.double(), y, temperature=T, alpha=0.5, reduction=reduction)
    scale = max(1.0, float(ref.detach().abs().max()))
    torch.testing.assert_close(got.double(), ref.detach(), rtol=0, atol=atol * scale, equal_nan=True)
    got.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(sr.grad.double(), sd.grad, rtol=0,
                               atol=gatol * max(1.0, float(sd.grad.abs().max())), equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("c", [1, 17, 1000, 2500])
def test_distill_every_path_matches_float64(level, dtype, c):
    g = torch.Generator().manual_seed(c)
    s = (torch.randn(13, c, generator=g) * 3).to(dtype)
    t = (torch.randn(13, c, generator=g) * 3).to(dtype)
    y = torch.randint(0, c, (13,), generator=g)
    y[4] = -100  # ignored row: KL only
    gatol = 2e-6 if dtype == torch.float32 else 1e-2
    _distill_check(s, t, y, gatol=gatol)


def test_distill_hostile_rows(level):
    c = 2100  # three chunks
    g = torch.Generator().manual_seed(3)
    s = torch.randn(6, c, generator=g) * 4
    t = torch.randn(6, c, generator=g) * 4
    y = torch.randint(0, c, (6,), generator=g)
    t[1, :1500] = float("-inf")  # masked teacher classes, a whole chunk among them: p_t = 0
    s[2, 1024:2048] = -200.0  # a chunk far below the row maximum: its exps underflow to 0
    s[3] = s[3] * 30  # wide logits
    sr = s.clone().requires_grad_()
    rows = distill_loss(sr, t, y, temperature=2.0, reduction="none", backend="cpu")
    ref = distill_loss_reference(s.double(), t.double(), y, temperature=2.0, reduction="none")
    ok = torch.tensor([True, False, True, True, True, True])  # F.kl_div gives NaN for -inf targets
    torch.testing.assert_close(rows[ok].double(), ref[ok], rtol=0, atol=2e-5 * float(ref[ok].abs().max()))
    assert torch.isfinite(rows).all()
    rows.sum().backward()
    assert torch.isfinite(sr.grad).all()
    # the -inf row: softmax(t/T) puts no mass on masked classes, so their gradient is the student's alone
    T = 2.0
    ps = torch.softmax(s[1].double() / T, -1)
    pt = torch.softmax(t[1].double() / T, -1)
    ce = torch.softmax(s[1].double(), -1)
    ce[y[1]] -= 1
    expect = 0.5 * T * (ps - pt) + 0.5 * ce  # reduction="none": kl weight alpha * T^2, ce weight 1 - alpha
    torch.testing.assert_close(sr.grad[1].double(), expect, rtol=0, atol=2e-6)
    # NaN in a row makes that row (and only that row) NaN
    s2 = s.clone()
    s2[5, 9] = float("nan")
    out = distill_loss(s2, t, y, temperature=2.0, reduction="none", backend="cpu")
    assert torch.isnan(out[5]) and torch.isfinite(out[:5]).all()


def test_distill_strided_logits(level):
    g = torch.Generator().manual_seed(8)
    s = (torch.randn(40, 9, generator=g) * 2).t()  # [9, 40], column stride != 1
    t = (torch.randn(40, 9, generator=g) * 2).t()
    y = torch.randint(0, 40, (9,), generator=g)
    assert s.stride(1) != 1
    _distill_check(s, t, y)
