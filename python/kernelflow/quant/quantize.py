"""``quantize(model)``: replace nn.Linear layers by Int8Linear and report the per-layer SNR."""

from __future__ import annotations

import copy
import fnmatch
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

from kernelflow.nn.int8 import MODES, Int8Linear
from kernelflow.quant.calibrate import activation_scale, collect_inputs, snr_db


@dataclass
class LayerReport:
    name: str
    in_features: int
    out_features: int
    mode: str
    snr_db: float  # quantized layer output vs the float layer, on calibration (or random) inputs
    act_scale: float | None  # static activation scale; None = dynamic per-row scales
    rows: int  # input rows the SNR was measured on
    data: str  # "calibration" or "random"


@dataclass
class QuantReport:
    mode: str
    layers: list[LayerReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def min_snr_db(self) -> float:
        return min((l.snr_db for l in self.layers), default=math.inf)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "layers": [asdict(l) for l in self.layers], "skipped": list(self.skipped)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def __str__(self) -> str:
        lines = [f"kernelflow int8 quantization ({self.mode}): {len(self.layers)} layers, "
                 f"{len(self.skipped)} skipped, min SNR {self.min_snr_db:.1f} dB"]
        for l in self.layers:
            sc = "dynamic" if l.act_scale is None else f"static {l.act_scale:.4g}"
            lines.append(f"  {l.name:<30} {l.in_features:>6} -> {l.out_features:<6} {l.snr_db:7.1f} dB  ({sc}, {l.data})")
        return "\n".join(lines)


def _skipped(name: str, mod: nn.Module, skip) -> bool:
    if skip is None:
        return False
    if callable(skip):
        return bool(skip(name, mod))
    if isinstance(skip, str):
        skip = (skip,)
    return any(name == s or name.startswith(s + ".") or fnmatch.fnmatchcase(name, s) for s in skip)


def _set_child(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


@torch.no_grad()
def quantize(model: nn.Module, mode: str = "w8a8", calibration: Iterable[Any] | None = None, method: str = "max",
             percentile: float = 99.99, skip: Iterable[str] | str | Callable[[str, nn.Module], bool] | None = (),
             inplace: bool = False, static: bool = False, backend: str = "auto", random_rows: int = 256,
             seed: int = 0) -> tuple[nn.Module, QuantReport]:
    """Replace every nn.Linear of ``model`` (except ``skip``: names, fnmatch patterns or a
    predicate ``(name, module) -> bool``) by an Int8Linear and return ``(model, report)``.

    mode: "w8a8" (int8 activations and weights, int8 GEMM) or "weight_only" (int8 weights only).
    calibration: an iterable of input batches (tensors, tuples of positional arguments or dicts
    of keyword arguments) run through the float model; each layer's inputs are recorded there.
    Without it every layer is measured on standard-normal random inputs.
    static: w8a8 only; use one static activation scale per layer from the calibration inputs
    (``method`` "max" or "percentile" of |x|) instead of the default dynamic per-row scales.
    The report gives each layer's SNR in dB (quantized output vs float output on the same inputs).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if method not in ("max", "percentile"):
        raise ValueError(f"method must be 'max' or 'percentile', got {method!r}")
    if static and mode != "w8a8":
        raise ValueError("static activation scales apply to mode='w8a8' only")
    if static and calibration is None:
        raise ValueError("static activation scales need calibration data")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    model = model if inplace else copy.deepcopy(model)
    report = QuantReport(mode=mode)
    # a Linear used at several places (weight sharing) is one layer: quantized once, every use
    # replaced; it stays float if any of its names is skipped
    uses: dict[int, list[str]] = {}
    mods: dict[int, nn.Linear] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        if isinstance(mod, nn.Linear) and name:
            uses.setdefault(id(mod), []).append(name)
            mods[id(mod)] = mod
    targets: dict[str, nn.Linear] = {}
    aliases: dict[str, list[str]] = {}
    for key, names in uses.items():
        mod = mods[key]
        if any(_skipped(n, mod, skip) for n in names):
            report.skipped.extend(names)
        else:
            targets[names[0]] = mod
            aliases[names[0]] = names
    if isinstance(model, nn.Linear):  # a bare Linear: quantize the model itself
        targets, aliases = {"": model}, {"": [""]}
    inputs = collect_inputs(model, targets, calibration) if calibration is not None else {}
    gen = torch.Generator().manual_seed(seed)
    for name, lin in targets.items():
        dev = lin.weight.device
        x = inputs.get(name)
        data = "calibration" if x is not None else "random"
        if x is None:
            x = torch.randn(random_rows, lin.in_features, generator=gen)
        scale = activation_scale(x, method, percentile) if static else None
        q = Int8Linear.from_float(lin, mode=mode, act_scale=scale, backend=backend)
        xd = x.to(dev)
        ref = lin(xd.to(lin.weight.dtype)).float()
        got = q(xd.float()).float()
        report.layers.append(LayerReport(name or "<model>", lin.in_features, lin.out_features, mode,
                                         snr_db(ref, got), scale, x.shape[0], data))
        if name:
            for n in aliases[name]:
                _set_child(model, n, q)
        else:
            model = q
    return model, report
