"""norm suite: LayerNorm and RMSNorm over the last dimension of float32 [rows, hidden], forward
and forward + backward (dx, dweight, dbias through ``torch.autograd.grad``): kernelflow's CPU
kernels against torch eager (``F.layer_norm`` / ``F.rms_norm``) and ``torch.compile`` of the same
call. Every implementation is checked against float64 autograd before timing.

Bytes (the floor): forward reads x and writes y (2 rows hidden 4); forward + backward adds reading
x and dy and writing dx (5 rows hidden 4); the [hidden] parameters and gradients are negligible.
"""

from __future__ import annotations

from typing import Callable

import torch

from kernelflow.bench.codepaths import family_path
from kernelflow.bench.compare import max_rel_diff
from kernelflow.bench.data import make_norm_inputs
from kernelflow.bench.peers import torch_peers
from kernelflow.bench.timing import interleaved_ms, record

# fp32 kernels against float64 autograd, relative to max(|ref|, 1): y and dx round once per
# element after fp32 row sums; dweight / dbias are fp32 sums over every row
TOL = {"y": 1e-4, "dx": 1e-4, "dw": 1e-3, "db": 1e-3}


def _impls(kind: str, backend: str, compile: bool) -> dict[str, Callable]:
    from kernelflow.ops.norm import layer_norm, rms_norm  # noqa: PLC0415

    if kind == "layer_norm":
        fns = {"kernelflow_cpu": lambda x, w, b: layer_norm(x, (x.shape[-1],), w, b, 1e-5, backend=backend),
               "torch_eager": torch_peers.layer_norm}
    else:
        fns = {"kernelflow_cpu": lambda x, w, b: rms_norm(x, (x.shape[-1],), w, 1e-6, backend=backend),
               "torch_eager": torch_peers.rms_norm}
    if compile:
        fns["torch_compile"] = torch_peers.compiled(fns["torch_eager"])
    return fns


def _grads(fn, x, w, b, dy, kind):
    leaves = [x.detach().requires_grad_(), w.detach().requires_grad_()]
    if kind == "layer_norm":
        leaves.append(b.detach().requires_grad_())
    y = fn(*leaves[:2], leaves[2] if kind == "layer_norm" else None)
    return [y.detach(), *torch.autograd.grad(y, leaves, dy)]


def run(cfg, progress) -> dict:
    rows_out, failures, checks = [], [], {}
    for hidden in cfg.norm_hidden:
        x, w, b, dy = make_norm_inputs(cfg.norm_rows, hidden)
        shape = (cfg.norm_rows, hidden)
        nb = cfg.norm_rows * hidden * 4
        for kind in ("layer_norm", "rms_norm"):
            progress(f"{kind} {shape}")
            fns = _impls(kind, cfg.cpu_backend, cfg.compile)
            ref = _grads(fns["torch_eager"], x.double(), w.double(), b.double(), dy.double(), kind)
            names = ("y", "dx", "dw", "db")[:len(ref)]
            errs = {}
            for impl, fn in fns.items():
                got = _grads(fn, x, w, b, dy, kind)  # also the compile warm-up
                errs[impl] = {n: max_rel_diff(r.numpy(), g.numpy()) for n, r, g in zip(names, ref, got)}
                checks[f"{kind}_{hidden}_{impl}"] = errs[impl]
                if impl.startswith("kernelflow"):
                    bad = {n: e for n, e in errs[impl].items() if not e <= TOL[n]}
                    if bad:
                        failures.append(f"{kind} {impl} {shape}: error vs float64 {bad} over {TOL}")
            with torch.no_grad():
                t_fwd = interleaved_ms({k: (lambda f=f: f(x, w, b)) for k, f in fns.items()}, repeat=cfg.repeat)
            t_bwd = interleaved_ms({k: (lambda f=f: _grads(f, x, w, b, dy, kind)) for k, f in fns.items()},
                                   repeat=cfg.repeat)
            for op, t, nbytes in ((kind, t_fwd, 2 * nb), (kind + "_fwd_bwd", t_bwd, 5 * nb)):
                for impl, ms in t.items():
                    r = record(op, impl, ms, shape=shape, dtype="float32", nbytes=nbytes,
                               max_rel_diff_vs_float64=max(errs[impl].values()))
                    if impl.startswith("kernelflow"):
                        r["path"] = family_path("norm")
                    rows_out.append(r)
    notes = (f"float32 [{cfg.norm_rows}, hidden] for hidden in {list(cfg.norm_hidden)}, weight and bias (LayerNorm) "
             f"or weight (RMSNorm); fwd_bwd = forward + torch.autograd.grad of (x, weight[, bias]) with a random "
             f"dy. Implementations interleaved, median of {cfg.repeat}; torch_compile compiled in the warm-up "
             f"({'timed' if cfg.compile else 'not run: --no-compile'}). max_rel_diff_vs_float64: worst of y, dx, "
             "dweight, dbias against float64 autograd.")
    return {"rows": rows_out, "skipped": {} if cfg.compile else {"torch_compile": "--no-compile"},
            "checks": checks, "failures": failures, "notes": notes}
