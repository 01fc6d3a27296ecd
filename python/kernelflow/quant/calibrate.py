"""Calibration: record the inputs each nn.Linear sees on calibration batches, derive static
activation scales from them (max or percentile of |x|) and measure quantization error (SNR)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
from torch import nn


def _run(model: nn.Module, batch: Any) -> None:
    if isinstance(batch, Mapping):
        model(**batch)
    elif isinstance(batch, (tuple, list)):
        model(*batch)
    else:
        model(batch)


@torch.no_grad()
def collect_inputs(model: nn.Module, layers: Mapping[str, nn.Module], batches: Iterable[Any],
                   max_rows: int = 8192) -> dict[str, torch.Tensor]:
    """Run ``batches`` through ``model`` and keep, per named layer, up to ``max_rows`` rows of its
    input (flattened to [rows, in_features], float32, on the CPU)."""
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    counts = dict.fromkeys(layers, 0)

    def hook_for(name):
        def hook(_mod, args):
            if counts[name] >= max_rows or not args:
                return
            x = args[0].detach()
            x = x.reshape(-1, x.shape[-1])[: max_rows - counts[name]].float().cpu()
            seen[name].append(x)
            counts[name] += x.shape[0]
        return hook

    handles = [mod.register_forward_pre_hook(hook_for(name)) for name, mod in layers.items()]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            _run(model, batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {name: torch.cat(v) for name, v in seen.items() if v}


def activation_scale(x: torch.Tensor, method: str = "max", percentile: float = 99.99) -> float:
    """Static int8 scale for activations x: max|x| / 127, or the ``percentile`` of |x| / 127
    (clips rare outliers to gain resolution for the rest). Non-finite values are ignored."""
    a = x.detach().float().abs().flatten()
    a = a[torch.isfinite(a)]
    if a.numel() == 0:
        return 1.0
    if method == "max":
        v = float(a.max())
    elif method == "percentile":
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        if a.numel() > 1 << 24:  # torch.quantile's input limit: a strided subsample
            a = a[:: a.numel() // (1 << 24) + 1]
        v = float(torch.quantile(a, percentile / 100.0))
    else:
        raise ValueError(f"method must be 'max' or 'percentile', got {method!r}")
    return v / 127.0 if v > 1e-30 else 1.0


def snr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """10 log10(sum ref^2 / sum (ref - approx)^2) in dB (inf when equal)."""
    r = reference.detach().double()
    e = (r - approx.detach().double().to(r.device)).pow(2).sum()
    s = r.pow(2).sum()
    if e == 0:
        return float("inf")
    return float(10.0 * torch.log10(s / e))
