"""Int8Linear on the CPU against its peers in the same run: torch float32 ``nn.Linear`` and torch's
dynamic int8 (``torch.ao.quantization.quantize_dynamic``), interleaved call by call (so load from
other processes on a shared machine hits every implementation alike), median of the repeats.

Each row reports the time, GOP/s (2 M N K operations), the fraction of the fp32 matmul rate
measured in the same run (the compute ceiling) and the speedups over the peers (> 1: kernelflow is
faster). The W8A8 output is checked to equal the exact integer reference on the same quantized
input, on whichever code path (``cpu_path``) ran.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any, Callable

import torch
from torch import nn


def _dynamic_int8(lin: nn.Linear):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic  # noqa: PLC0415

            return quantize_dynamic(nn.Sequential(lin), {nn.Linear}, dtype=torch.qint8)
    except Exception:  # a torch build without the quantized engines
        return None


TIMERS = {"wall": time.perf_counter, "thread": time.thread_time}


def _interleaved_ms(fns: dict[str, Callable[[], Any]], repeat: int, timer: str = "wall") -> dict[str, float]:
    clock = TIMERS[timer]
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t0 = clock()
            f()
            times[k].append((clock() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def w8a8_is_exact(q, x: torch.Tensor) -> bool:
    """Int8Linear (w8a8, dynamic scales) output == the exact integer reference on the same input."""
    from kernelflow.ops.int8_gemm import ACTIVATIONS, int8_gemm_reference  # noqa: PLC0415
    from kernelflow.ops.quant import quantize_rows_reference  # noqa: PLC0415

    xq, s = quantize_rows_reference(x)
    ref = int8_gemm_reference(xq, q.weight_q, s, q.weight_scale, q.bias, ACTIVATIONS[q.activation])
    return bool(torch.equal(q(x), ref))


def run_int8(ms=(1, 64, 1024), k: int = 4096, n: int = 4096, repeat: int = 7,
             progress: Callable[[str], None] | None = None, timer: str = "wall") -> dict:
    """timer "wall" (perf_counter), or "thread" (the calling thread's CPU time: immune to other
    processes' load, meaningful only with one thread)."""
    if timer not in TIMERS:
        raise ValueError(f"timer must be one of {tuple(TIMERS)}, got {timer!r}")
    from kernelflow.nn.int8 import Int8Linear  # noqa: PLC0415
    from kernelflow.ops.int8_gemm import cpu_path  # noqa: PLC0415

    torch.manual_seed(0)
    lin = nn.Linear(k, n)
    impls: dict[str, Any] = {"kernelflow_w8a8": Int8Linear.from_float(lin, backend="cpu"),
                             "kernelflow_weight_only": Int8Linear.from_float(lin, mode="weight_only", backend="cpu"),
                             "torch_fp32": lin}
    dyn = _dynamic_int8(lin)
    skipped = {} if dyn is not None else {"torch_dynamic_int8": "torch has no quantized engine here"}
    if dyn is not None:
        impls["torch_dynamic_int8"] = dyn
    rows: list[dict] = []
    with torch.no_grad():
        big = torch.randn(1024, k)
        ceiling = _interleaved_ms({"mm": lambda: big @ lin.weight.T}, max(3, repeat // 2), timer)["mm"]
        ceiling_gflops = 2 * 1024 * n * k / (ceiling * 1e-3) / 1e9
        for m in ms:
            if progress:
                progress(f"int8 M={m}")
            x = torch.randn(m, k)
            t = _interleaved_ms({name: (lambda f=f: f(x)) for name, f in impls.items()}, repeat, timer)
            exact = w8a8_is_exact(impls["kernelflow_w8a8"], x)
            for name, v in t.items():
                gops = 2 * m * n * k / (v * 1e-3) / 1e9
                r = {"suite": "int8", "op": "linear", "impl": name, "shape": [m, n, k], "ms": round(v, 4), "timer": timer,
                     "gops": round(gops, 2), "frac_fp32_matmul": round(gops / ceiling_gflops, 4)}
                if name.startswith("kernelflow"):
                    r["path"] = cpu_path()
                    r["speedup_vs_torch_fp32"] = round(t["torch_fp32"] / v, 3)
                    if "torch_dynamic_int8" in t:
                        r["speedup_vs_torch_dynamic_int8"] = round(t["torch_dynamic_int8"] / v, 3)
                    if name == "kernelflow_w8a8":
                        r["exact_vs_integer_reference"] = exact
                rows.append(r)
    return {"rows": rows, "skipped": skipped, "ceilings": {"fp32_matmul_gflops": round(ceiling_gflops, 2)},
            "exact": all(r.get("exact_vs_integer_reference", True) for r in rows)}
