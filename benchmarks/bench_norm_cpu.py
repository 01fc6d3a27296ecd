"""CPU benchmark: kernelflow's fused LayerNorm / RMSNorm (forward, and forward + backward) against
torch eager (F.layer_norm / F.rms_norm) and torch.compile of the same function, in one run with
the implementations interleaved (median of repeats), each kernelflow ISA level forced in turn
(kernelflow._C.set_cpu_isa), at rows x hidden = 8192 x 1024 and 2048 x 4096, float32 and
bfloat16. Writes benchmarks/results/norm_cpu.json.

    PYTHONPATH=python python benchmarks/bench_norm_cpu.py [--repeat 7] [--no-compile] [--quick]

Bytes counted: forward reads x and writes y; forward + backward also reads dy and x and writes
dx (5 tensors). Every implementation allocates its outputs fresh on each call, as in training.
The ceiling is the copy bandwidth of a 256 MiB np.copyto measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from kernelflow import _C
from kernelflow.bench.timing import cpu_summary, record, write_results
from kernelflow.ops.norm import layer_norm, rms_norm

SHAPES = [(8192, 1024), (2048, 4096)]


def copy_gbps(nbytes: int = 256 << 20, repeat: int = 7) -> float:
    a = np.random.default_rng(0).random(nbytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    ts = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        np.copyto(b, a)
        ts.append(time.perf_counter() - t0)
    return 2 * a.nbytes / statistics.median(ts[1:]) / 1e9


def interleaved_ms(impls, call, repeat: int) -> dict:
    """{name: median ms of call(f)} for impls [(name, f, level or None)]: one warm-up (and compile)
    call each, then `repeat` rounds running every implementation once, its kernelflow level forced."""
    times = {name: [] for name, _, _ in impls}
    for name, f, lvl in impls:
        _C.set_cpu_isa(lvl or "auto")
        call(f)
    for _ in range(repeat):
        for name, f, lvl in impls:
            _C.set_cpu_isa(lvl or "auto")
            t0 = time.perf_counter()
            call(f)
            times[name].append((time.perf_counter() - t0) * 1e3)
    _C.set_cpu_isa("auto")
    return {k: statistics.median(v) for k, v in times.items()}


def make_fns(kind: str, h: int, compile_: bool):
    """{impl: (fwd(x, w, b), fwd_bwd(x, w, b, dy))} for one kind; kernelflow levels share one fn."""
    if kind == "layer":
        def torch_f(x, w, b):
            return F.layer_norm(x, (h,), w, b, 1e-5)

        def kf_f(x, w, b):
            return layer_norm(x, (h,), w, b, 1e-5, backend="cpu")
    else:
        def torch_f(x, w, b):
            return F.rms_norm(x, (h,), w, 1e-6)

        def kf_f(x, w, b):
            return rms_norm(x, (h,), w, 1e-6, backend="cpu")
    fns = {"torch eager": torch_f, "kernelflow": kf_f}
    if compile_:
        fns["torch.compile"] = torch.compile(torch_f, dynamic=False)
    return fns


def run_case(kind, rows, h, dtype, fns, levels, repeat):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(rows, h, generator=g) * 2 + 0.5).to(dtype)
    w = torch.randn(h, generator=g) * 0.5 + 1
    b = torch.randn(h, generator=g) * 0.1 if kind == "layer" else None
    dy = torch.randn(rows, h, generator=g).to(dtype)
    xr = x.clone().requires_grad_()
    wr = w.clone().requires_grad_()
    br = b.clone().requires_grad_() if b is not None else None

    # correctness before timing: kernelflow against torch eager on the same inputs (every level)
    with torch.no_grad():
        ref = fns["torch eager"](x, w, b).float()
        for lvl in levels:
            _C.set_cpu_isa(lvl)
            got = fns["kernelflow"](x, w, b).float()
            tol = 1e-4 if dtype == torch.float32 else 3e-2
            assert torch.allclose(got, ref, rtol=tol, atol=tol), (kind, lvl, float((got - ref).abs().max()))
    _C.set_cpu_isa("auto")

    def fwd(f):
        with torch.no_grad():
            f(x, w, b)

    def fwd_bwd(f):
        for p in (xr, wr, br):
            if p is not None:
                p.grad = None
        f(xr, wr, br).backward(dy)

    impls = [(name, f, None) for name, f in fns.items() if name != "kernelflow"]
    impls += [(f"kernelflow ({lvl})", fns["kernelflow"], lvl) for lvl in levels]
    out = []
    for mode, call, ntensors in (("fwd", fwd, 2), ("fwd+bwd", fwd_bwd, 5)):
        med = interleaved_ms(impls, call, repeat)
        for name, _, lvl in impls:
            out.append(dict(op=f"{kind}_norm {mode}", impl=name, ms=med[name], shape=(rows, h),
                            dtype=str(dtype).replace("torch.", ""), nbytes=ntensors * x.numel() * x.element_size(),
                            vs_eager=round(med["torch eager"] / med[name], 3),
                            vs_compile=round(med["torch.compile"] / med[name], 3) if "torch.compile" in med else None))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--quick", action="store_true", help="float32 LayerNorm only")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "norm_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    levels = [lv for lv in ("avx512", "avx2", "portable")
              if ["portable", "avx2", "avx512"].index(lv) <= ["portable", "avx2", "avx512"].index(_C.cpu_isa_detected())]
    load0 = os.getloadavg()
    ceiling = copy_gbps()
    cases = [("layer", torch.float32), ("layer", torch.bfloat16), ("rms", torch.float32)]
    if args.quick:
        cases = cases[:1]
    rows = []
    for kind, dtype in cases:
        for r, h in SHAPES:
            fns = make_fns(kind, h, compile_=not args.no_compile and dtype == torch.float32)
            for row in run_case(kind, r, h, dtype, fns, levels, args.repeat):
                rec = record(row.pop("op"), row.pop("impl"), row.pop("ms"), row.pop("shape"), row.pop("dtype"),
                             row.pop("nbytes"), ceiling_gbps=ceiling, **row)
                rows.append(rec)
                print(f'{rec["op"]:18s} {str(rec["shape"]):13s} {rec["dtype"]:9s} {rec["impl"]:24s} {rec["ms"]:9.2f} ms '
                      f'{rec["gbps"]:6.2f} GB/s  x{rec["vs_eager"]} vs eager'
                      + (f'  x{rec["vs_compile"]} vs compile' if rec.get("vs_compile") else ""))
    load1 = os.getloadavg()
    write_results(args.out, "norm_cpu", rows, ceilings={"copy_gbps": round(ceiling, 2)}, notes=(
        f"cpu: {cpu_summary()}; threads={torch.get_num_threads()}; kernelflow auto level={_C.cpu_isa_detected()}; "
        f"levels forced in the same run with _C.set_cpu_isa. The machine was shared with other builds and "
        f"benchmarks while this ran (load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end on "
        f"{os.cpu_count()} cores), so absolute times are noisy and every OpenMP region pays scheduling "
        f"latency; the ratios come from interleaved rounds (median of {args.repeat}). vs_eager / vs_compile = "
        f"peer time / this time (> 1: faster than the peer). Outputs are freshly allocated on every call "
        f"(33.5 MB tensors are fresh mmaps here, so page faults are part of every implementation's time)."))


if __name__ == "__main__":
    main()
