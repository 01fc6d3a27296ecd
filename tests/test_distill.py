"""distill_loss / DistillationLoss / Distiller on every backend against the float64 torch composition."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kernelflow.distill import DistillationLoss, Distiller
from kernelflow.ops.distill import _distill_loss_op, distill_loss, distill_loss_reference

# Tolerances (absolute on the loss / gradient, relative to a loss of order 1): float32 inputs
# with fp32 accumulation agree with the float64 reference to ~1e-6 (exp/log rounding, growing
# slowly with C in the sums; the CUDA kernels use the fast __expf). 16-bit logits are compared
# against the reference evaluated on the same rounded logits, so only the fp32 arithmetic and the
# 16-bit rounding of the stored gradient differ: the gradient gets the dtype's half-ulp relative
# error on entries of size <= 1 (bf16 2^-8, fp16 2^-11).
LOSS_ATOL = {torch.float32: 2e-5, torch.float16: 2e-5, torch.bfloat16: 2e-5}
GRAD_ATOL = {torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def interp(backend: str, device: str) -> bool:
    return backend == "triton" and device == "cpu"


def make(n, c, dtype, device, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(n, c, generator=g) * scale).to(dtype).to(device)
    t = (torch.randn(n, c, generator=g) * scale).to(dtype).to(device)
    y = torch.randint(0, max(c, 1), (n,), generator=g).to(device)
    return s, t, y


def run_both(s, t, y, backend, T=2.0, alpha=0.5, reduction="mean", ignore_index=-100):
    """(loss, grad) from kernelflow and from the float64 reference (on the same rounded logits)."""
    s1 = s.detach().clone().requires_grad_(True)
    out = distill_loss(s1, t, y, T, alpha, reduction, ignore_index, backend=backend)
    out.sum().backward()
    s2 = s.detach().to(torch.float64).cpu().requires_grad_(True)
    ref = distill_loss_reference(s2, t.cpu().double(), y.cpu(), T, alpha, reduction, ignore_index)
    ref.sum().backward()
    return out.detach().cpu().double(), s1.grad.cpu().double(), ref.detach(), s2.grad


def close(got, ref, atol):
    assert got.shape == ref.shape
    assert torch.equal(torch.isnan(got), torch.isnan(ref))
    m = ~torch.isnan(ref)
    if m.any():
        err = float((got[m] - ref[m]).abs().max())
        assert err <= atol * max(1.0, float(ref[m].abs().max())), err


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("C", [2, 3, 1000, 4097])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_reference(device_backend, dtype, C, reduction):
    device, backend = device_backend
    n = 3 if interp(backend, device) or C > 1000 else 17
    s, t, y = make(n, C, dtype, device, seed=C)
    y[1] = -100  # one ignored row
    got, g, ref, gref = run_both(s, t, y, backend, T=3.0, alpha=0.3, reduction=reduction)
    close(got, ref, LOSS_ATOL[dtype])
    close(g, gref, GRAD_ATOL[dtype])


@pytest.mark.parametrize("T,alpha", [(1.0, 0.0), (1.0, 1.0), (0.5, 1.0), (10.0, 0.0), (20.0, 0.7), (1e-2, 0.5)])
def test_temperature_alpha_edges(device_backend, T, alpha):
    device, backend = device_backend
    s, t, y = make(5, 37, torch.float32, device, seed=3, scale=1.0)
    y[0] = -100
    for red in ("mean", "none"):
        got, g, ref, gref = run_both(s, t, y, backend, T=T, alpha=alpha, reduction=red)
        # T = 0.01 scales logits by 100: the float32 rounding of s/T is amplified by 1/T. Large T:
        # KL_i is a difference of O(log C) fp32 terms (sum p_t (b - a) - lse_b + lse_a), so its
        # absolute error ~1e-7 is multiplied by alpha * T^2 (400 at T = 20).
        tol = 2e-4 if T < 0.1 else 2e-5 * max(1.0, T * T / 25)
        close(got, ref, tol)
        close(g, gref, 2e-4 if T < 0.1 else 2e-5)


def test_ignore_index(device_backend):
    device, backend = device_backend
    s, t, y = make(6, 11, torch.float32, device, seed=5)
    y[:] = torch.tensor([7, -1, 3, -1, -1, 0])
    for red in ("mean", "sum", "none"):
        got, g, ref, gref = run_both(s, t, y, backend, alpha=0.4, reduction=red, ignore_index=-1)
        close(got, ref, 2e-5)
        close(g, gref, 2e-6)
    # mean divides the CE sum by the labelled rows (3), the KL sum by all rows (6)
    kl_only = distill_loss(s, t, y, 2.0, 1.0, "sum", ignore_index=-1, backend=backend)
    ce_only = distill_loss(s, t, y, 2.0, 0.0, "sum", ignore_index=-1, backend=backend)
    mean = distill_loss(s, t, y, 2.0, 0.5, "mean", ignore_index=-1, backend=backend)
    assert math.isclose(float(mean), 0.5 * float(kl_only) / 6 + 0.5 * float(ce_only) / 3, rel_tol=1e-5)
    # every label ignored: CE term is 0 (F.cross_entropy would give NaN)
    y_all = torch.full_like(y, -1)
    v = distill_loss(s, t, y_all, 2.0, 0.5, "mean", ignore_index=-1, backend=backend)
    assert math.isclose(float(v), 0.5 * float(kl_only) / 6, rel_tol=1e-5)


def test_mean_matches_torch_functional(device_backend):
    """'mean' equals the common composition kl_div(batchmean) + cross_entropy(mean)."""
    import torch.nn.functional as F  # noqa: PLC0415

    device, backend = device_backend
    s, t, y = make(8, 13, torch.float32, device, seed=9)
    y[2] = -100
    T, a = 4.0, 0.7
    got = distill_loss(s, t, y, T, a, backend=backend).cpu()
    sc, tc, yc = s.cpu(), t.cpu(), y.cpu()
    ref = a * T * T * F.kl_div(F.log_softmax(sc / T, -1), F.log_softmax(tc / T, -1), reduction="batchmean",
                               log_target=True) + (1 - a) * F.cross_entropy(sc, yc)
    assert math.isclose(float(got), float(ref), rel_tol=1e-5)


def test_nan_propagates(device_backend):
    device, backend = device_backend
    s, t, y = make(4, 9, torch.float32, device, seed=2)
    s[1, 4] = float("nan")
    t[2, 0] = float("nan")
    rows = distill_loss(s, t, y, reduction="none", backend=backend).cpu()
    assert torch.isnan(rows[1]) and torch.isnan(rows[2])
    assert torch.isfinite(rows[0]) and torch.isfinite(rows[3])
    assert torch.isnan(distill_loss(s, t, y, backend=backend)).item()
    s1 = s.clone().requires_grad_(True)
    distill_loss(s1, t, y, reduction="sum", backend=backend).backward()
    g = s1.grad.cpu()
    assert torch.isnan(g[1]).all() and torch.isnan(g[2]).all() and torch.isfinite(g[[0, 3]]).all()


def test_large_logits_and_minus_inf_teacher(device_backend):
    device, backend = device_backend
    s, t, y = make(3, 50, torch.float32, device, seed=4, scale=1.0)
    s = s * 1e4  # online max keeps exp in range
    t[:, 10:20] = float("-inf")  # masked teacher classes: p_t = 0 adds nothing
    got, g, _, _ = run_both(s, t, y, backend, T=2.0, alpha=0.5, reduction="none")
    # F.kl_div(log_target=True) gives 0 * (-inf) = NaN there; the reference on -1e30 is its limit
    _, _, ref, gref = run_both(s, t.clamp_min(-1e30), y, backend, T=2.0, alpha=0.5, reduction="none")
    assert torch.isfinite(got).all()
    close(got, ref, 1e-5)
    close(g, gref, 1e-5)


def test_empty_batch(device_backend):
    device, backend = device_backend
    s, t, y = make(0, 7, torch.float32, device)
    s.requires_grad_(True)
    for red in ("mean", "sum"):
        v = distill_loss(s, t, y, reduction=red, backend=backend)
        assert v.shape == () and float(v.detach()) == 0.0
    v = distill_loss(s, t, y, reduction="none", backend=backend)
    assert v.shape == (0,)
    distill_loss(s, t, y, backend=backend).backward()
    assert s.grad.shape == (0, 7)


def test_non_contiguous(device_backend):
    device, backend = device_backend
    s, t, y = make(12, 40, torch.float32, device, seed=8)
    sv, tv = s[::2, 1::2], t.t().contiguous().t()[::2, 1::2]
    got, g, ref, gref = run_both(sv, tv, y[::2] % 20, backend, reduction="none")
    close(got, ref, 2e-5)
    close(g, gref, 2e-6)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_128k_classes(backend):
    if backend not in __import__("kernelflow").available_backends("cpu"):
        pytest.skip(f"{backend} unavailable")
    s, t, y = make(2, 131072, torch.float32, "cpu", seed=11)
    got, g, ref, gref = run_both(s, t, y, backend, T=2.0, alpha=0.5, reduction="none")
    # 131072-term fp32 sums: relative rounding ~ sqrt(C) * 2^-24
    close(got, ref, 1e-4)
    close(g, gref, 5e-7)


def test_bad_arguments():
    s, t, y = make(4, 5, torch.float32, "cpu")
    with pytest.raises(ValueError, match="temperature"):
        distill_loss(s, t, y, temperature=0.0)
    with pytest.raises(ValueError, match="alpha"):
        distill_loss(s, t, y, alpha=1.5)
    with pytest.raises(ValueError, match="reduction"):
        distill_loss(s, t, y, reduction="avg")
    with pytest.raises(ValueError, match="teacher_logits"):
        distill_loss(s, t[:, :3], y)
    with pytest.raises(ValueError, match="labels"):
        distill_loss(s, t, y[:2])
    with pytest.raises(TypeError, match="student_logits"):
        distill_loss(s.to(torch.int64), t, y)
    with pytest.raises(TypeError, match="labels"):
        distill_loss(s, t, y.float())
    if "cpu" in __import__("kernelflow").available_backends("cpu"):
        with pytest.raises(ValueError, match="labels"):
            distill_loss(s, t, torch.tensor([0, 1, 9, 2]), backend="cpu")


def test_opcheck(device_backend):
    device, backend = device_backend
    s, t, y = make(4, 6, torch.float32, device, seed=1)
    w = torch.full((1,), 0.25, device=device)
    torch.library.opcheck(_distill_loss_op, (s.requires_grad_(True), t, y, w, 2.0, 0.5, -100, backend))


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_compile_fullgraph(backend):
    if backend not in __import__("kernelflow").available_backends("cpu"):
        pytest.skip(f"{backend} unavailable")
    # an explicit backend: resolving "auto" reads a ContextVar, which dynamo cannot trace
    loss = DistillationLoss(temperature=3.0, alpha=0.6, backend=backend)
    s, t, y = make(6, 10, torch.float32, "cpu", seed=6)
    y[0] = -100
    f = torch.compile(lambda a, b, c: loss(a, b, c), fullgraph=True, backend="eager")
    s1 = s.clone().requires_grad_(True)
    s2 = s.clone().requires_grad_(True)
    v1 = f(s1, t, y)
    v2 = loss(s2, t, y)
    v1.backward()
    v2.backward()
    assert torch.allclose(v1, v2) and torch.allclose(s1.grad, s2.grad)


def test_module_shapes_and_labels_none():
    loss = DistillationLoss(reduction="none")
    s, t, _ = make(12, 5, torch.float32, "cpu")
    y = torch.randint(0, 5, (3, 4))
    assert loss(s.reshape(3, 4, 5), t.reshape(3, 4, 5), y).shape == (3, 4)
    kl = DistillationLoss(alpha=1.0, reduction="sum")(s, t, None)
    assert math.isclose(float(DistillationLoss(alpha=0.5, reduction="sum")(s, t, None)), 0.5 * float(kl), rel_tol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(alpha=-0.1)


# ---- Distiller ----

def _models(seed=0):
    torch.manual_seed(seed)
    teacher = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 4))
    student = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
    return teacher, student


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_distiller_teacher_frozen_student_learns():
    teacher, student = _models()
    t0 = {k: v.clone() for k, v in teacher.state_dict().items()}
    s0 = {k: v.clone() for k, v in student.state_dict().items()}
    d = Distiller(teacher, student)
    d.train()
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    x, y = _data()
    first = d.step(x, y)
    assert set(first) >= {"loss", "distill_loss"} and all(isinstance(v, float) for v in first.values())
    for _ in range(30):
        last = d.step(x, y)
    assert last["loss"] < first["loss"]
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in t0.items())
    assert all(p.grad is None for p in teacher.parameters())
    assert any(not torch.equal(v, student.state_dict()[k]) for k, v in s0.items())
    # the teacher is deterministic (eval mode): dropout off
    assert torch.equal(d.teacher_logits(x), d.teacher_logits(x))


def test_distiller_feature_hooks():
    teacher, student = _models(1)
    d = Distiller(teacher, student, feature_pairs={"0": "0"}, feature_weight=0.5)
    assert isinstance(d.projections["0"], nn.Linear) and d.projections["0"].weight.shape == (32, 6)
    p0 = d.projections["0"].weight.clone()
    x, y = _data()
    out = d.step(x, y)
    assert "feature_loss" in out and out["feature_loss"] > 0
    assert math.isclose(out["loss"], out["distill_loss"] + 0.5 * out["feature_loss"], rel_tol=1e-5)
    assert not torch.equal(p0, d.projections["0"].weight)  # the projection is trained too
    with pytest.raises(ValueError, match="no submodule"):
        Distiller(teacher, student, feature_pairs=[("nope", "0")])
    with pytest.raises(ValueError, match="feature size"):
        Distiller(teacher, student, feature_pairs=[("1", "0")])  # ReLU has no size attribute
    d2 = Distiller(teacher, student, feature_pairs=[("1", "1")], feature_dims={"1": 6})
    assert d2.projections["1"].weight.shape == (6, 6)  # one name in both models: the given size is used for both


def test_distiller_compute_loss_in_user_loop():
    teacher, student = _models(2)
    d = Distiller(teacher, student, loss=DistillationLoss(temperature=4.0, alpha=0.9))
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    x, y = _data(64)
    losses = []
    for _ in range(40):
        loss = d.compute_loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in teacher.parameters())
    assert d(x).shape == (64, 4)
