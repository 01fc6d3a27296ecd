"""distill suite: the knowledge-distillation loss, forward + backward on float32 [rows, classes]
logits: kernelflow's fused loss (``kernelflow.ops.distill.distill_loss``: loss and gradient in one
pass, backward one multiply) against the usual torch composition (``F.kl_div`` of log-softmaxes +
``F.cross_entropy``) eager and under ``torch.compile``. Checked against float64 first.

Bytes (the floor): read student and teacher logits once and write the gradient once in the
forward, then read that gradient and write grad_s in the backward: 5 rows classes 4.
"""

from __future__ import annotations

import torch

from kernelflow.bench.codepaths import family_path
from kernelflow.bench.compare import max_rel_diff
from kernelflow.bench.data import make_logits
from kernelflow.bench.peers import torch_peers
from kernelflow.bench.timing import interleaved_ms, record

T, ALPHA = 2.0, 0.5
TOL = 1e-4  # fp32 online softmax against float64: loss and gradient, relative to max(|ref|, 1)


def _fwd_bwd(fn, s, t, y):
    s = s.detach().requires_grad_()
    loss = fn(s, t, y)
    (g,) = torch.autograd.grad(loss, s)
    return loss.detach(), g


def run(cfg, progress) -> dict:
    from kernelflow.ops.distill import distill_loss  # noqa: PLC0415

    s, t, y = make_logits(cfg.distill_rows, cfg.distill_classes)
    shape = (cfg.distill_rows, cfg.distill_classes)
    fns = {"kernelflow_cpu": lambda s, t, y: distill_loss(s, t, y, T, ALPHA, backend=cfg.cpu_backend),
           "torch_eager": lambda s, t, y: torch_peers.distill_loss(s, t, y, T, ALPHA)}
    if cfg.compile:
        fns["torch_compile"] = torch_peers.compiled(fns["torch_eager"])
    progress(f"distill_loss {shape}")
    ref_loss, ref_g = _fwd_bwd(fns["torch_eager"], s.double(), t.double(), y)
    errs, failures = {}, []
    for impl, fn in fns.items():
        loss, g = _fwd_bwd(fn, s, t, y)  # also the compile warm-up
        errs[impl] = max(max_rel_diff(ref_loss.numpy(), loss.numpy()), max_rel_diff(ref_g.numpy(), g.numpy()))
        if impl.startswith("kernelflow") and not errs[impl] <= TOL:
            failures.append(f"distill_loss {impl} {shape}: error vs float64 {errs[impl]:.3g} > {TOL}")
    ms = interleaved_ms({k: (lambda f=f: _fwd_bwd(f, s, t, y)) for k, f in fns.items()}, repeat=cfg.repeat)
    rows = []
    for impl, v in ms.items():
        r = record("distill_loss_fwd_bwd", impl, v, shape=shape, dtype="float32",
                   nbytes=5 * cfg.distill_rows * cfg.distill_classes * 4, max_rel_diff_vs_float64=errs[impl])
        if impl.startswith("kernelflow"):
            r["path"] = family_path("distill")
        rows.append(r)
    notes = (f"float32 logits {list(shape)} ~ N(0, 2), labels uniform with every 97th from row 1 ignored (-100), T = {T}, "
             f"alpha = {ALPHA}, reduction mean; forward + torch.autograd.grad w.r.t. the student logits. "
             f"Implementations interleaved, median of {cfg.repeat}. max_rel_diff_vs_float64: the worse of the loss "
             "and the gradient against the torch composition in float64.")
    return {"rows": rows, "skipped": {} if cfg.compile else {"torch_compile": "--no-compile"},
            "checks": {"max_rel_diff_vs_float64": errs}, "failures": failures, "notes": notes}
