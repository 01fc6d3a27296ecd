"""Fused knowledge-distillation loss (Hinton et al.) and its gradient in one pass.

Per row i of student logits s [N, C] and teacher logits t [N, C], with temperature T and labels y:

    loss_i = alpha * T^2 * KL(softmax(t_i / T) || softmax(s_i / T)) + (1 - alpha) * CE(s_i, y_i)

The CE term is left out (exactly, not multiplied by zero) for rows with y_i == ignore_index.
Reductions:

- ``"none"``: the [N] vector loss_i (ignored rows carry only their KL term).
- ``"sum"``: sum_i loss_i.
- ``"mean"``: alpha * T^2 * sum_i KL_i / N  +  (1 - alpha) * sum_i CE_i / max(n_valid, 1), where
  n_valid counts rows whose label is not ignore_index. This is the usual composition
  ``alpha * T^2 * F.kl_div(log_softmax(s/T), log_softmax(t/T), reduction="batchmean", log_target=True)
  + (1 - alpha) * F.cross_entropy(s, y, ignore_index=ignore_index)``; it differs only when every
  label is ignored (F.cross_entropy then gives NaN, here the CE term is 0) or N == 0 (0 here).

The op ``kernelflow::distill_loss`` returns (loss_rows [N] float32, grad [N, C] dtype of s): the
weighted per-row losses and d loss_rows_i / d s_i, computed in the same pass (online softmax with
fp32 accumulation, no softmax tensor kept). Backward only scales the stored gradient by the
incoming gradient. No gradient flows to the teacher logits. Teacher logits of -inf (masked
classes) have p_t = 0 and add nothing to the KL term (the F.kl_div composition gives NaN there).
Labels outside [0, C) that are not
ignore_index raise on the CPU backends and give NaN rows on the CUDA / Triton backends.

Temperatures. The fused kernels form KL as sum p_t (b - a) - lse_b + lse_a in fp32: its absolute
error (~1e-7 log C) is multiplied by T^2, and 1 / T overflows fp32 below ~3e-39. For T outside
[``T_FUSED_MIN``, ``T_FUSED_MAX``], and for float64 student logits, the op computes in float64
with a form that stays exact at any T: with z = t - s, p = softmax(t / T), c = E_p[z] and
e = (z - c) / T, T^2 KL = T^2 log E_p[exp(-e)] = T^2 log1p(E_p[expm1(-e) + e]) (the bracket from
its Taylor series when e is tiny) for rows with max |e| < 1/2, and otherwise
T (E_p[z] + max s - max t) + T^2 (lse((s - max s) / T) - lse((t - max t) / T)). The gradient is
torch autograd of that form (float32 loss for 16/32-bit logits, float64 for float64).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from kernelflow._array import mat
from kernelflow.ops._registry import kernel_op

REDUCTIONS = ("mean", "sum", "none")
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
T_FUSED_MIN, T_FUSED_MAX = 1e-3, 16.0  # the fused fp32 kernels' temperature range (see above)


def _h(e: torch.Tensor) -> torch.Tensor:
    """expm1(-e) + e = e^2/2 - e^3/6 + e^4/24 - ..., without cancellation for tiny e."""
    series = e * e * (0.5 - e * (1.0 / 6.0 - e * (1.0 / 24.0)))
    return torch.where(e.abs() < 1e-3, series, torch.expm1(-e) + e)


def _stable_rows(s: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, T: float, kl_alpha: float,
                 ce_weight: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Per-row kl_alpha * T^2 * KL + ce_weight * CE in float64, exact at any temperature (module
    docstring); differentiable w.r.t. s by autograd."""
    sd, td = s.to(torch.float64), t.detach().to(torch.float64)
    n, C = sd.shape
    tmax = td.amax(1, keepdim=True) if C else td.sum(1, keepdim=True)
    smax = sd.amax(1, keepdim=True) if C else sd.sum(1, keepdim=True)
    p = torch.softmax((td - tmax) / T, dim=1)  # no overflow at tiny T
    live = p > 0  # E_p[z] over the classes the teacher gives weight (masked -inf classes add nothing)
    c = (p * torch.where(live, td - sd, 0.0)).sum(1, keepdim=True)
    # the series form needs every class (also p = 0 ones: their exp(-e) p need not vanish) near c
    e_all = torch.where(torch.isfinite(td), (td - sd - c) / T, torch.inf)
    small = (e_all.abs().amax(1) < 0.5) if C else torch.ones(n, dtype=torch.bool, device=s.device)
    e = torch.where(small[:, None], e_all, 0.0)  # each branch sees only finite values (NaN-free autograd)
    series = T * T * torch.log1p((p * _h(e)).sum(1))
    la = torch.logsumexp((sd - smax) / T, dim=1)
    lb = torch.logsumexp((td - tmax) / T, dim=1)
    direct = T * (c[:, 0] + smax[:, 0] - tmax[:, 0]) + T * T * (la - lb)
    kl = torch.where(small, series, torch.where(small, 0.0, direct))
    nan_row = torch.isnan(sd).any(1) | torch.isnan(td).any(1) | torch.isneginf(tmax[:, 0])
    kl = torch.where(nan_row, torch.nan, kl)
    valid = labels != ignore_index
    ce = F.cross_entropy(sd, torch.where(valid, labels, 0), reduction="none") if C else sd.new_zeros(n)
    return kl_alpha * kl + torch.where(valid, ce_weight.to(torch.float64) * ce, 0.0)


def distill_loss_reference(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                           temperature: float = 2.0, alpha: float = 0.5, reduction: str = "mean",
                           ignore_index: int = -100) -> torch.Tensor:
    """The float64 torch composition the fused op matches (differentiable w.r.t. the student logits)."""
    T = float(temperature)
    s = student_logits.to(torch.float64)
    t = teacher_logits.detach().to(torch.float64)
    n = s.shape[0]
    kl = F.kl_div(F.log_softmax(s / T, dim=-1), F.log_softmax(t / T, dim=-1), reduction="none",
                  log_target=True).sum(-1)  # [N]
    ce = F.cross_entropy(s, labels, ignore_index=ignore_index, reduction="none")  # [N], 0 where ignored
    if reduction == "none":
        return alpha * T * T * kl + (1 - alpha) * ce
    if reduction == "sum":
        return alpha * T * T * kl.sum() + (1 - alpha) * ce.sum()
    n_valid = (labels != ignore_index).sum().clamp_min(1)
    return alpha * T * T * kl.sum() / max(n, 1) + (1 - alpha) * ce.sum() / n_valid


def _rows_torch(k, s, t, labels, ce_weight, temperature, kl_weight, ignore_index):
    """Pure-torch (fp32) version of the fused op, its "torch" kernel: per-row weighted loss and its gradient."""
    inv_t = 1.0 / temperature
    x = s.float()
    la = torch.log_softmax(x * inv_t, dim=-1)
    lb = torch.log_softmax(t.float() * inv_t, dim=-1)
    pa, pb = la.exp(), lb.exp()
    kl = torch.where(pb == 0, 0.0, pb * (lb - la)).sum(-1)  # p_t = 0 adds nothing; NaN propagates
    valid = labels != ignore_index
    inside = (labels >= 0) & (labels < x.shape[1])
    safe = torch.where(valid & inside, labels, 0)  # no out-of-bounds gather (a device assert on CUDA)
    lx = torch.log_softmax(x, dim=-1)
    ce = torch.where(inside, -lx.gather(1, safe[:, None]).squeeze(1), torch.nan)
    w = ce_weight.float().reshape(())
    loss = kl_weight * kl + torch.where(valid, w * ce, 0.0)
    onehot = F.one_hot(safe, x.shape[1]).to(x.dtype) if x.shape[1] else torch.zeros_like(x)
    grad = kl_weight * inv_t * (pa - pb) + torch.where(valid[:, None], w * (lx.exp() - onehot), 0.0)
    return loss, grad.to(s.dtype)


@kernel_op("kernelflow::distill_loss", triton="kernelflow.triton.distill")
def _distill_loss_op(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                     ce_weight: torch.Tensor, temperature: float, kl_weight: float, ignore_index: int,
                     backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """s, t [N, C] (t in s's dtype), labels [N] int64, ce_weight [1] float32 -> (loss_rows [N] float32,
    grad [N, C] s's dtype); fp32 accumulation (online softmax)."""


_distill_loss_op.kernel("torch")(_rows_torch)


def _distill_args(s: torch.Tensor, labels: torch.Tensor, ce_weight: torch.Tensor):
    """(loss [N] float32, grad [N, C] s's dtype) to write, labels [N] and ce_weight [1] float32 contiguous."""
    loss = torch.empty(s.shape[0], dtype=torch.float32, device=s.device)
    grad = torch.empty(s.shape, dtype=s.dtype, device=s.device)
    return loss, grad, labels.contiguous(), ce_weight.to(torch.float32).contiguous()


@_distill_loss_op.kernel("triton")
def _(k, s, t, labels, ce_weight, temperature, kl_weight, ignore_index):
    loss, grad, y, w = _distill_args(s, labels, ce_weight)
    k.triton.distill_loss(s, t, y, w, temperature, kl_weight, ignore_index, loss, grad)
    return loss, grad


@_distill_loss_op.kernel("cpu", "cuda")
def _(k, s, t, labels, ce_weight, temperature, kl_weight, ignore_index):
    loss, grad, y, w = _distill_args(s, labels, ce_weight)
    k.call("distill_loss", mat(s), mat(t), y.data_ptr(), w.data_ptr(), temperature, kl_weight, ignore_index,
           loss.data_ptr(), mat(grad))
    return loss, grad


@_distill_loss_op.register_fake
def _(student_logits, teacher_logits, labels, ce_weight, temperature, kl_weight, ignore_index, backend):
    s = student_logits
    return s.new_empty((s.shape[0],), dtype=torch.float32), s.new_empty(s.shape)


def _setup_context(ctx, inputs, output):
    ctx.s_dtype = inputs[0].dtype
    ctx.save_for_backward(output[1])


def _backward(ctx, grad_loss, _grad_grad):
    # d loss_rows_i / d s_i was written by the forward pass; scale it by the incoming gradient.
    (g,) = ctx.saved_tensors
    gs = (g.float() * grad_loss[:, None].float()).to(ctx.s_dtype)
    return gs, None, None, None, None, None, None, None


_distill_loss_op.register_autograd(_backward, setup_context=_setup_context)


def _check(student_logits, teacher_logits, labels, temperature, alpha, reduction):
    for name, v in (("student_logits", student_logits), ("teacher_logits", teacher_logits), ("labels", labels)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    s, t = student_logits, teacher_logits
    if s.dim() != 2:
        raise ValueError(f"student_logits must be 2-D [N, C], got shape {tuple(s.shape)}")
    if t.shape != s.shape:
        raise ValueError(f"teacher_logits must have the shape of student_logits {tuple(s.shape)}, got {tuple(t.shape)}")
    if s.dtype not in _DTYPES + (torch.float64,):
        raise TypeError(f"student_logits must be float32, float64, float16 or bfloat16, got {s.dtype}")
    if t.dtype not in _DTYPES + (torch.float64,):
        raise TypeError(f"teacher_logits must be a floating tensor, got {t.dtype}")
    if labels.dim() != 1 or labels.shape[0] != s.shape[0]:
        raise ValueError(f"labels must be 1-D with {s.shape[0]} entries, got shape {tuple(labels.shape)}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    if t.device != s.device or labels.device != s.device:
        raise ValueError(f"student_logits, teacher_logits and labels must be on one device, got {s.device}, "
                         f"{t.device}, {labels.device}")
    if s.shape[1] < 1 and s.shape[0] > 0:
        raise ValueError("student_logits must have at least one class")
    if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
            or not math.isfinite(float(temperature)) or temperature <= 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                 temperature: float = 2.0, alpha: float = 0.5, reduction: str = "mean", ignore_index: int = -100,
                 backend: str | None = None) -> torch.Tensor:
    """Distillation loss of student_logits [N, C] (float32/float16/bfloat16) against teacher_logits
    [N, C] (cast to the student's dtype; no gradient flows to it) and labels [N] (integer).

    Returns a float32 scalar (``"mean"``, ``"sum"``) or [N] vector (``"none"``); see the module
    docstring for what ``"mean"`` divides by. The gradient w.r.t. student_logits is computed by the
    forward pass and stored, so backward is one multiply.
    """
    _check(student_logits, teacher_logits, labels, temperature, alpha, reduction)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
    s = student_logits
    y = labels.to(torch.int64)
    T, alpha = float(temperature), float(alpha)
    n = s.shape[0]
    kl_alpha = alpha / max(n, 1) if reduction == "mean" else alpha
    if reduction == "mean":
        n_valid = (y != ignore_index).sum().clamp_min(1)
        ce_weight = ((1.0 - alpha) / n_valid.to(torch.float32)).reshape(1)  # on the device: no host sync
    else:
        ce_weight = torch.full((1,), 1.0 - alpha, dtype=torch.float32, device=s.device)
    stable = s.dtype == torch.float64 or not T_FUSED_MIN <= T <= T_FUSED_MAX
    if (stable or s.device.type == "cpu") and s.shape[0] and s.shape[1] and not torch.compiler.is_compiling():
        # host data: checking costs no sync (compiled graphs rely on the kernels' own checks)
        bad = (y != ignore_index) & ((y < 0) | (y >= s.shape[1]))
        if bool(bad.any()):
            r = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"labels: row {r} has label {int(y[r])}, outside [0, {s.shape[1]}) and not ignore_index")
    if stable:
        if reduction == "mean":
            ce_weight = (1.0 - alpha) / (y != ignore_index).sum().clamp_min(1).to(torch.float64)
        rows = _stable_rows(s, teacher_logits, y, T, kl_alpha, ce_weight.reshape(()), int(ignore_index))
        rows = rows if s.dtype == torch.float64 else rows.to(torch.float32)
        return rows if reduction == "none" else rows.sum()
    t = teacher_logits.detach().to(s.dtype)
    kl_weight = kl_alpha * T * T
    loss_rows, _ = _distill_loss_op(s, t, y, ce_weight, T, float(kl_weight), int(ignore_index),
                                    _distill_loss_op.resolve(backend, s.device))
    return loss_rows if reduction == "none" else loss_rows.sum()
