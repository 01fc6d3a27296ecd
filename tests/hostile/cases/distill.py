"""Distillation loss: extreme temperatures against a 60-digit mpmath reference, its gradient,
float64 and masked logits, argument errors."""

from __future__ import annotations

import numpy as np
import torch

from _case import case, close, raises

BACKENDS = ("cpu", "triton", "torch")


def _data(C=5, N=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, C, generator=g) * 3, torch.randn(N, C, generator=g) * 3, torch.arange(N) % C


def _mp_rows(s, t, y, T, alpha):
    """Per-row loss and d loss / d s in 60-digit arithmetic (the ground truth at any T)."""
    import mpmath

    mpmath.mp.dps = 60
    T = mpmath.mpf(T)
    losses, grads = [], []
    for i in range(s.shape[0]):
        sv = [mpmath.mpf(float(v)) for v in s[i]]
        tv = [mpmath.mpf(float(v)) for v in t[i]]
        a, b = [v / T for v in sv], [v / T for v in tv]
        la = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in a))
        lb = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in b))
        pa, pb = [mpmath.exp(v - la) for v in a], [mpmath.exp(v - lb) for v in b]
        kl = mpmath.fsum(p * ((bj - lb) - (aj - la)) for p, aj, bj in zip(pb, a, b))
        lx = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in sv))
        px = [mpmath.exp(v - lx) for v in sv]
        yi = int(y[i])
        losses.append(alpha * T * T * kl + (1 - alpha) * (lx - sv[yi]))
        grads.append([alpha * T * (pa[j] - pb[j]) + (1 - alpha) * (px[j] - (1 if j == yi else 0)) for j in range(len(sv))])
    return np.array([float(v) for v in losses]), np.array([[float(v) for v in r] for r in grads])


for be in BACKENDS:
    for T in (1e-40, 1e-12, 1e-4, 0.7, 64.0, 1e4, 1e20):
        @case(f"distill/temperature_{T:g}[{be}]")
        def _(be=be, T=T):
            from kernelflow.ops import distill_loss

            s, t, y = _data()
            ref, _ = _mp_rows(s, t, y, T, 0.5)
            got = distill_loss(s, t, y, temperature=T, alpha=0.5, reduction="none", backend=be)
            assert torch.isfinite(got).all(), got
            close(got, ref, rtol=2e-5, atol=1e-6, what=f"loss rows at T={T:g}")
            close(distill_loss(s, t, y, temperature=T, alpha=0.5, backend=be), ref.mean(), rtol=2e-5, atol=1e-6,
                  what="mean")

    for T in (1e-6, 1e4, 1e15):
        @case(f"distill/gradient_temperature_{T:g}[{be}]")
        def _(be=be, T=T):
            from kernelflow.ops import distill_loss

            s, t, y = _data(seed=3)
            s = s.requires_grad_()
            _, gref = _mp_rows(s.detach(), t, y, T, 0.7)
            loss = distill_loss(s, t, y, temperature=T, alpha=0.7, reduction="sum", backend=be)
            (g,) = torch.autograd.grad(loss, s)
            close(g, gref, rtol=1e-4, atol=1e-6, what=f"d loss / d student at T={T:g}")

    @case(f"distill/float64_logits[{be}]")
    def _(be=be):
        from kernelflow.ops import distill_loss, distill_loss_reference

        s, t, y = _data(seed=4)
        s, t = s.double().requires_grad_(), t.double()
        got = distill_loss(s, t, y, temperature=3.0, backend=be)
        ref = distill_loss_reference(s, t, y, temperature=3.0)
        assert got.dtype == torch.float64, got.dtype
        close(got, ref, rtol=1e-12)
        close(torch.autograd.grad(got, s)[0], torch.autograd.grad(ref, s)[0], rtol=1e-10, atol=1e-15, what="gradient")

    @case(f"distill/masked_teacher_classes_extreme_T[{be}]")
    def _(be=be):
        from kernelflow.ops import distill_loss

        s, t, y = _data(seed=5)
        t[:, 1] = -np.inf
        y = torch.tensor([0, 2, 3, 4])
        for T in (2.0, 1e6):
            got = distill_loss(s, t, y, temperature=T, reduction="none", backend=be)
            tt = t.clone()
            tt[:, 1] = -1e4  # p_t = 0 to any precision: the masked class adds nothing
            ref, _ = _mp_rows(s, tt, y, T, 0.5) if T < 1e5 else (None, None)
            assert torch.isfinite(got).all(), got
            if ref is not None:
                close(got, ref, rtol=2e-5, atol=1e-6)

    @case(f"distill/nan_row_is_nan[{be}]")
    def _(be=be):
        from kernelflow.ops import distill_loss

        s, t, y = _data(seed=6)
        s[1, 2] = np.nan
        for T in (2.0, 1e8):
            got = distill_loss(s, t, y, temperature=T, reduction="none", backend=be)
            assert torch.isnan(got[1]) and torch.isfinite(got[[0, 2, 3]]).all(), got


for bad in (0.0, -1.0, float("nan"), float("inf"), True, "2.0", None):
    @case(f"distill/bad_temperature_{bad!r}")
    def _(bad=bad):
        from kernelflow.distill import DistillationLoss
        from kernelflow.ops import distill_loss

        s, t, y = _data()
        raises(ValueError, "temperature must be", distill_loss, s, t, y, temperature=bad)
        raises(ValueError, "temperature must be", DistillationLoss, temperature=bad)


@case("distill/numpy_scalar_temperature_and_alpha")
def _():
    from kernelflow.distill import DistillationLoss

    s, t, y = _data()
    ref = DistillationLoss(temperature=3.0, alpha=0.25)(s, t, y)
    for T, a in ((np.float32(3.0), np.float64(0.25)), (np.int64(3), np.float32(0.25)), (torch.tensor(3.0).item(), 0.25)):
        close(DistillationLoss(temperature=T, alpha=a)(s, t, y), ref, rtol=1e-6)


@case("distill/module_float64_logits_and_leading_dims")
def _():
    from kernelflow.distill import DistillationLoss
    from kernelflow.ops import distill_loss_reference

    g = torch.Generator().manual_seed(7)
    s = torch.randn(2, 3, 6, generator=g, dtype=torch.float64)
    t = torch.randn(2, 3, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (2, 3), generator=g)
    got = DistillationLoss(temperature=2.0)(s, t, y)
    close(got, distill_loss_reference(s.reshape(6, 6), t.reshape(6, 6), y.reshape(6), 2.0), rtol=1e-12)


@case("distill/argument_errors")
def _():
    from kernelflow.distill import DistillationLoss
    from kernelflow.ops import distill_loss

    s, t, y = _data()
    raises(ValueError, "alpha must be", distill_loss, s, t, y, alpha=1.5)
    raises(ValueError, "alpha must be", DistillationLoss, alpha=float("nan"))
    raises(ValueError, "reduction must be", distill_loss, s, t, y, reduction="avg")
    raises(ValueError, "teacher_logits must have the shape", distill_loss, s, t[:, :3], y)
    raises(ValueError, "teacher_logits must have the shape", DistillationLoss(), s, t[:2], y)
    raises(TypeError, "labels must be an integer tensor", distill_loss, s, t, y.float())
    raises(ValueError, "labels must be 1-D", distill_loss, s, t, y[:2])
    raises(TypeError, "student_logits must be float32, float64", distill_loss, s.long(), t, y)
    raises(TypeError, "teacher_logits must be a torch.Tensor", DistillationLoss(), s, t.numpy(), y)


for be in ("cpu", "torch"):
    for T in (2.0, 1e6):
        @case(f"distill/label_out_of_range[{be},T={T:g}]")
        def _(be=be, T=T):
            from kernelflow.ops import distill_loss

            s, t, y = _data()
            raises(ValueError, "labels: row 2 has label 9", distill_loss, s, t, torch.tensor([0, 1, 9, 2]),
                   temperature=T, backend=be)


@case("distill/empty_batch")
def _():
    from kernelflow.ops import distill_loss

    s = torch.zeros(0, 4, requires_grad=True)
    for T in (2.0, 1e6):
        got = distill_loss(s, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), temperature=T)
        assert got.shape == () and float(got) == 0.0, got
