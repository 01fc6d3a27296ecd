"""GPU LayerNorm / RMSNorm benchmark (needs a CUDA device; imports without one).

    python benchmarks/gpu_norm.py [benchmarks/results/gpu_norm.json]

Forward, and forward + backward (dx, dweight, dbias through torch.autograd.grad), at 16384 rows x
hidden 4096 in bfloat16 and float32: kernelflow's CUDA and Triton kernels against torch eager
(F.layer_norm / F.rms_norm) and torch.compile of the same function. Correctness is checked first
against float64. Times are medians of CUDA events; GB/s counts each tensor read or written once
(forward: x and y; forward + backward: x, y, then x, dy, dx), reported as a fraction of the
measured device copy bandwidth.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from kernelflow.bench.timing import copy_bandwidth_gbps, cuda_time_ms, record, write_results
from kernelflow.ops.norm import layer_norm, rms_norm

ROWS, HIDDEN = 16384, 4096


def _backends() -> list[str]:
    return [b for b in ("cuda", "triton") if b in __import__("kernelflow").available_backends("cuda")]


def _fn(kind: str, impl: str):
    """f(x, w, b) -> y for one implementation."""
    if impl in ("cuda", "triton"):
        if kind == "layer":
            return lambda x, w, b: layer_norm(x, (x.shape[-1],), w, b, 1e-5, backend=impl)
        return lambda x, w, b: rms_norm(x, (x.shape[-1],), w, 1e-6, backend=impl)
    if kind == "layer":
        f = lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)  # noqa: E731
    else:
        f = lambda x, w, b: F.rms_norm(x, (x.shape[-1],), w, 1e-6)  # noqa: E731
    return torch.compile(f) if impl == "torch.compile" else f


def _inputs(rows, hidden, dtype, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = (torch.randn(rows, hidden, device="cuda", generator=g) * 2 + 0.5).to(dtype)
    w = (torch.randn(hidden, device="cuda", generator=g) * 0.5 + 1).to(dtype)
    b = (torch.randn(hidden, device="cuda", generator=g) * 0.1).to(dtype)
    dy = torch.randn(rows, hidden, device="cuda", generator=g).to(dtype)
    return x, w, b, dy


def check_correctness() -> None:
    # tolerances: one fp32 -> 16-bit rounding of the outputs; fp32 sums for dweight / dbias
    tol = {torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 4e-3}
    for rows, hidden in [(1, 1), (33, 127), (257, 1000), (64, 4096), (7, 4097), (3, 65536), (2048, 8192)]:
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            x, w, b, dy = _inputs(rows, hidden, dtype, seed=rows + hidden)
            for kind in ("layer", "rms"):
                bb = b if kind == "layer" else None
                leaves = [t.double().requires_grad_() for t in (x, w)] + ([b.double().requires_grad_()] if bb is not None else [])
                ref = _fn(kind, "torch")(leaves[0], leaves[1], leaves[2] if bb is not None else None)
                rgrads = torch.autograd.grad(ref, leaves, dy.double())
                for be in _backends():
                    ins = [t.detach().clone().requires_grad_() for t in (x, w)] + ([bb.detach().clone().requires_grad_()] if bb is not None else [])
                    y = _fn(kind, be)(ins[0], ins[1], ins[2] if bb is not None else None)
                    grads = torch.autograd.grad(y, ins, dy)
                    for name, got, want, scale in [("y", y, ref, 1.0)] + [
                            (n, gg, rr, max(1.0, rows ** 0.5)) for n, gg, rr in zip(("dx", "dw", "db"), grads, rgrads)]:
                        err = ((got.double() - want).abs() / want.abs().clamp_min(1.0)).max().item()
                        assert err <= tol[dtype] * scale, f"{be} {kind} {name} error {err} at {(rows, hidden)} {dtype}"
    print("correctness: ok", _backends())


def main(out_path: str = "benchmarks/results/gpu_norm.json") -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_norm.py needs a CUDA device")
    check_correctness()
    ceil_gbps = copy_bandwidth_gbps()
    rows: list[dict] = []
    impls = _backends() + ["torch", "torch.compile"]
    for dtype in (torch.bfloat16, torch.float32):
        es = torch.finfo(dtype).bits // 8
        x, w, b, dy = _inputs(ROWS, HIDDEN, dtype)
        xg, wg, bg = (t.detach().clone().requires_grad_() for t in (x, w, b))
        for kind in ("layer", "rms"):
            op = "layer_norm" if kind == "layer" else "rms_norm"
            bias = b if kind == "layer" else None
            biasg = bg if kind == "layer" else None
            leaves = [xg, wg] + ([biasg] if biasg is not None else [])
            for impl in impls:
                f = _fn(kind, impl)
                with torch.no_grad():
                    ms = cuda_time_ms(lambda: f(x, w, bias))
                rows.append(record(f"{op}_fwd", impl, ms, shape=(ROWS, HIDDEN), dtype=str(dtype).split(".")[-1],
                                   nbytes=2 * ROWS * HIDDEN * es, ceiling_gbps=ceil_gbps))
                ms = cuda_time_ms(lambda: torch.autograd.grad(f(xg, wg, biasg), leaves, dy))
                rows.append(record(f"{op}_fwd_bwd", impl, ms, shape=(ROWS, HIDDEN), dtype=str(dtype).split(".")[-1],
                                   nbytes=5 * ROWS * HIDDEN * es, ceiling_gbps=ceil_gbps))
                print(rows[-2], rows[-1], sep="\n", flush=True)
    return write_results(out_path, "gpu_norm", rows, ceilings={"copy_gbps": round(ceil_gbps, 1)},
                         notes="median CUDA-event time; GB/s = bytes read + written once; eps 1e-5 (LayerNorm), 1e-6 (RMSNorm)")


if __name__ == "__main__":
    main(*sys.argv[1:2])
