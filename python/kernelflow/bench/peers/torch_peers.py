"""torch compositions of kernelflow's ops: what a user writes without kernelflow, run eagerly
and under ``torch.compile`` (inductor; the compile happens in the warm-up and is not timed)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def compiled(fn: Callable) -> Callable:
    """torch.compile(fn, dynamic=False), built lazily so importing costs nothing."""
    return torch.compile(fn, dynamic=False)


def torch_stats(x: torch.Tensor) -> torch.Tensor:
    """column_stats' six rows in fp32 (torch's default accumulation): x [rows, cols] -> [6, cols]."""
    fin = torch.isfinite(x)
    n = fin.sum(0).to(torch.float32)
    z = torch.where(fin, x, 0.0)
    mean = z.sum(0) / n.clamp_min(1)
    d = torch.where(fin, x - mean, 0.0)
    m2 = (d * d).sum(0)
    nan = torch.isnan(x).sum(0).to(torch.float32)
    mn = torch.where(fin, x, float("inf")).amin(0)
    mx = torch.where(fin, x, float("-inf")).amax(0)
    return torch.stack([n, nan, mean, m2, mn, mx])


def torch_transform(x: torch.Tensor, p: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    """numeric_transform: x [rows, cols], p [6, cols] fp32 -> [rows, cols] out_dtype."""
    fill, lo, hi, shift, inv, off = p.unbind(0)
    v = torch.where(torch.isnan(x), fill, x)
    v = torch.clamp(v, lo, hi)
    return ((v - shift) * inv + off).to(out_dtype)


def layer_norm(x, w, b):  # x [rows, hidden], w, b [hidden]
    return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)


def rms_norm(x, w, b=None):  # x [rows, hidden], w [hidden]
    return F.rms_norm(x, (x.shape[-1],), w, 1e-6)


def distill_loss(s, t, y, temperature: float = 2.0, alpha: float = 0.5):
    """The usual composition (s, t [N, C] logits, y [N] labels, -100 ignored), fp32."""
    kl = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1),
                  reduction="batchmean", log_target=True)
    return alpha * temperature * temperature * kl + (1 - alpha) * F.cross_entropy(s, y)
