"""preprocess suite on a CUDA device: ``column_stats`` and ``numeric_transform`` (f32 -> f32 /
bf16) on the cuda and triton backends against torch eager and ``torch.compile`` of the same
formulas, inputs rotated through more than 4x L2, checked against float64 before timing.
``device="cpu"`` runs the same code on the CPU backend at small sizes (a smoke test of the
harness on machines without a GPU; its timings mean nothing)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from kernelflow.bench.peers.torch_peers import torch_stats as _torch_stats
from kernelflow.bench.peers.torch_peers import torch_transform as _torch_transform
from kernelflow.bench.timing import cpu_time_ms, cuda_time_ms, record


def _gpu_check(name: str, got: torch.Tensor, ref: torch.Tensor, rtol: float, atol: float) -> tuple[bool, float]:
    g, r = got.double(), ref.double()
    both_nan = torch.isnan(g) & torch.isnan(r)
    err = torch.where(both_nan, 0.0, (g - r).abs() / (atol + rtol * r.abs()))
    worst = float(torch.nan_to_num(err, nan=float("inf")).max()) if err.numel() else 0.0
    return worst <= 1.0, worst


def run_gpu(shapes=((16_000_000, 32), (1_000_000, 32)), nan: float = 0.05, repeat: int = 30,
            log: Callable[[str], None] | None = None, device: str = "cuda", compile: bool = True) -> dict:
    """Benchmark the preprocessing ops on the current CUDA device; returns {rows, ceilings, notes, failures}.

    device="cpu" runs the same code path on the CPU backend at small sizes (a smoke test of the
    harness on machines without a GPU; its timings mean nothing)."""
    import kernelflow  # noqa: PLC0415
    from kernelflow.bench.timing import copy_bandwidth_gbps  # noqa: PLC0415
    from kernelflow.ops import column_stats, column_stats_reference, numeric_transform  # noqa: PLC0415
    from kernelflow.ops import numeric_transform_reference, transform_params  # noqa: PLC0415

    dev = torch.device(device)
    on_gpu = dev.type == "cuda"
    if on_gpu:
        copy_gbps: float | None = copy_bandwidth_gbps()
        l2 = getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", 50 << 20) or (50 << 20)
        backends = [b for b in ("cuda", "triton") if b in kernelflow.available_backends(dev)]
        timer, sync = cuda_time_ms, torch.cuda.synchronize
    else:
        copy_gbps, l2, backends = None, 0, ["cpu"]
        timer, sync = cpu_time_ms, (lambda: None)
    rows_out: list[dict] = []
    failures: list[str] = []
    compiled_stats = torch.compile(_torch_stats, dynamic=False) if compile else None
    compiled_transform = torch.compile(_torch_transform, dynamic=False) if compile else None
    for rows, cols in shapes:
        nbytes_in = rows * cols * 4
        nbuf = max(2, -(-4 * l2 // nbytes_in))  # rotate through > 4x L2 of inputs
        gen = torch.Generator(device=dev).manual_seed(0)
        bufs = []
        for _ in range(nbuf):
            x = torch.randn(rows, cols, device=dev, generator=gen) * 3 + 1
            x[torch.rand(rows, cols, device=dev, generator=gen) < nan] = float("nan")
            bufs.append(x)
        ref_stats = column_stats_reference(bufs[0])
        s = ref_stats.cpu().numpy()
        sd = np.sqrt(s[3] / np.maximum(s[0], 1))
        p64 = transform_params(cols, fill=s[2], lo=s[4] * 0.9, hi=s[5] * 0.9, shift=s[2],
                               inv_scale=1 / np.where(sd > 0, sd, 1.0))
        params = torch.as_tensor(p64, device=dev)
        params32 = params.float()
        shape = (rows, cols)
        # stats: reads x once; the [6, cols] result is negligible
        stat_impls: dict[str, Callable] = {f"kernelflow_{b}": (lambda x, b=b: column_stats(x, backend=b)) for b in backends}
        stat_impls["torch_eager"] = _torch_stats
        if compiled_stats is not None:
            stat_impls["torch_compile"] = compiled_stats
        for name, fn in stat_impls.items():
            n_before = len(rows_out)
            try:
                got = fn(bufs[0])
                sync()
                # kernelflow summarises float32 per thread/tile in fp32 before a float64 merge (the
                # op tests allow 2e-5 relative to max(|ref|, 1)); the torch peers accumulate all in fp32
                tol = (2e-5, 2e-5) if name.startswith("kernelflow") else (1e-3, 1e-3)
                ok, worst = _gpu_check(name, got[[0, 1, 2, 3, 4, 5]], ref_stats, *tol)
                if not ok:
                    failures.append(f"column_stats {name} {shape}: error {worst:.3g} x tolerance")
                ms = timer(fn, [(b,) for b in bufs], warmup=3, repeat=repeat)
                rows_out.append(record("column_stats", name, ms, shape=shape, dtype="float32", nbytes=nbytes_in,
                                       ceiling_gbps=copy_gbps, correct=ok, err_over_tol=round(worst, 4)))
            except Exception as e:
                failures.append(f"column_stats {name} {shape}: {type(e).__name__}: {e}")
            if log and len(rows_out) > n_before:
                r = rows_out[-1]
                log(f"  column_stats {name:22s} {shape}: {r['ms']:.3f} ms {r['gbps']:.0f} GB/s ({r.get('frac_copy', 0):.0%} of copy)")
        for odt, oname, osize in ((torch.float32, "float32", 4), (torch.bfloat16, "bfloat16", 2)):
            ref_out = numeric_transform_reference(bufs[0], params, odt)
            nbytes = rows * cols * (4 + osize)
            tr_impls: dict[str, Callable] = {
                f"kernelflow_{b}": (lambda x, b=b, odt=odt: numeric_transform(x, params, odt, backend=b)) for b in backends}
            tr_impls["torch_eager"] = lambda x, odt=odt: _torch_transform(x, params32, odt)
            if compiled_transform is not None:
                tr_impls["torch_compile"] = lambda x, odt=odt: compiled_transform(x, params32, odt)
            for name, fn in tr_impls.items():
                n_before = len(rows_out)
                try:
                    got = fn(bufs[0])
                    sync()
                    # one float32 rounding of the output (or bf16's 8-bit mantissa) + fp32 params in torch
                    tol = (1e-5, 1e-5) if odt == torch.float32 else (8e-3, 1e-5)
                    ok, worst = _gpu_check(name, got, ref_out, *tol)
                    if not ok:
                        failures.append(f"numeric_transform->{oname} {name} {shape}: error {worst:.3g} x tolerance")
                    del got
                    ms = timer(fn, [(b,) for b in bufs], warmup=3, repeat=repeat)
                    rows_out.append(record(f"numeric_transform_{oname}", name, ms, shape=shape, dtype="float32",
                                           out_dtype=oname, nbytes=nbytes, ceiling_gbps=copy_gbps, correct=ok,
                                           err_over_tol=round(worst, 4)))
                except Exception as e:
                    failures.append(f"numeric_transform->{oname} {name} {shape}: {type(e).__name__}: {e}")
                if log and len(rows_out) > n_before:
                    r = rows_out[-1]
                    log(f"  transform->{oname:8s} {name:22s} {shape}: {r['ms']:.3f} ms {r['gbps']:.0f} GB/s "
                        f"({r.get('frac_copy', 0):.0%} of copy)")
            del ref_out
        del bufs
        if on_gpu:
            torch.cuda.empty_cache()
    notes = (
        f"float32 inputs with {nan:.0%} NaN, rotated across >= 2 buffers totalling > 4x L2 ({l2 >> 20} MiB); "
        "CUDA-event median; correctness checked against the float64 reference before timing. GB/s = input "
        "read once + output written once; frac_copy = GB/s / measured device-to-device copy bandwidth. "
        "torch_eager / torch_compile compute the same formulas in fp32."
    )
    ceilings = {"copy_gbps": round(copy_gbps, 1)} if copy_gbps else {}
    return {"rows": rows_out, "ceilings": ceilings, "notes": notes, "failures": failures}
