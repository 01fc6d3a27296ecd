"""CPU benchmark: kernelflow's fused distillation loss (KL with temperature + CE, loss and gradient
in one pass) against the same loss in torch eager and under torch.compile, forward + backward,
implementations interleaved (median of repeats), each kernelflow ISA level forced in turn, at
4096 x 1000 logits float32 and bfloat16. Writes benchmarks/results/distill_loss_cpu.json
(benchmarks/results/distill_cpu.json belongs to distill_experiment.py).

    PYTHONPATH=python python benchmarks/bench_distill_cpu.py [--repeat 7] [--no-compile]

Bytes counted: student and teacher logits read, the gradient written (3 tensors). Ceiling: copy
bandwidth of a 256 MiB np.copyto in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_norm_cpu import copy_gbps, interleaved_ms  # noqa: E402

from kernelflow import _C  # noqa: E402
from kernelflow.bench.timing import cpu_summary, record, write_results  # noqa: E402
from kernelflow.ops.distill import distill_loss  # noqa: E402

T, ALPHA = 2.0, 0.5
SHAPES = [(4096, 1000)]


def torch_loss(s, t, y):
    kl = F.kl_div(F.log_softmax(s / T, dim=-1), F.log_softmax(t / T, dim=-1), reduction="batchmean", log_target=True)
    return ALPHA * T * T * kl + (1 - ALPHA) * F.cross_entropy(s, y)


def kf_loss(s, t, y):
    return distill_loss(s, t, y, temperature=T, alpha=ALPHA, backend="cpu")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "distill_loss_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    order = ["portable", "avx2", "avx512"]
    levels = [lv for lv in reversed(order) if order.index(lv) <= order.index(_C.cpu_isa_detected())]
    load0 = os.getloadavg()
    ceiling = copy_gbps()
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for n, c in SHAPES:
            g = torch.Generator().manual_seed(0)
            s = (torch.randn(n, c, generator=g) * 3).to(dtype)
            t = (torch.randn(n, c, generator=g) * 3).to(dtype)
            y = torch.randint(0, c, (n,), generator=g)
            impls = [("torch eager", torch_loss, None)]
            if not args.no_compile and dtype == torch.float32:
                impls.append(("torch.compile", torch.compile(torch_loss, dynamic=False), None))
            impls += [(f"kernelflow ({lv})", kf_loss, lv) for lv in levels]
            sr = s.clone().requires_grad_()
            ref = torch_loss(s.double(), t.double(), y)
            for name, f, lv in impls:  # correctness (and compile) before timing
                _C.set_cpu_isa(lv or "auto")
                got = float(f(s, t, y))
                assert abs(got - float(ref)) <= (1e-4 if dtype == torch.float32 else 2e-2) * max(1.0, abs(float(ref))), (name, got, float(ref))

            def step(f):
                sr.grad = None
                f(sr, t, y).backward()

            med = interleaved_ms(impls, step, args.repeat)
            for name, _, _ in impls:
                rec = record("distill_loss fwd+bwd", name, med[name], (n, c), str(dtype).replace("torch.", ""),
                             3 * s.numel() * s.element_size(), ceiling_gbps=ceiling,
                             vs_eager=round(med["torch eager"] / med[name], 3),
                             vs_compile=round(med["torch.compile"] / med[name], 3) if "torch.compile" in med else None)
                rows.append(rec)
                print(f'{str(rec["shape"]):12s} {rec["dtype"]:9s} {name:22s} {rec["ms"]:9.2f} ms {rec["gbps"]:6.2f} GB/s'
                      f'  x{rec["vs_eager"]} vs eager' + (f'  x{rec["vs_compile"]} vs compile' if rec["vs_compile"] else ""))
    load1 = os.getloadavg()
    write_results(args.out, "distill_loss_cpu", rows, ceilings={"copy_gbps": round(ceiling, 2)}, notes=(
        f"loss = {ALPHA} * T^2 * KL(softmax(t/T) || softmax(s/T)) (batchmean) + {1 - ALPHA} * CE(s, y), T={T}, "
        f"forward + backward w.r.t. the student logits; cpu: {cpu_summary()}; threads={torch.get_num_threads()}. "
        f"The machine was shared with other builds and benchmarks (load average {load0[0]:.1f} at the start, "
        f"{load1[0]:.1f} at the end on {os.cpu_count()} cores): ratios come from interleaved rounds (median of "
        f"{args.repeat}). vs_eager / vs_compile = peer time / this time."))


if __name__ == "__main__":
    main()
