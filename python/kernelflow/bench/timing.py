"""Timing and ceilings.

GPU: CUDA events around each call, warm-up first, median of many runs; inputs larger than L2 are
rotated by the caller (pass a list of argument tuples). CPU: perf_counter, median of repeats.
Every result is a plain dict (``record``) written as JSON with the machine, commit and date.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import time
from typing import Any, Callable, Sequence

import torch


def cpu_time_ms(fn: Callable[..., Any], args_list: Sequence[tuple] = ((),), warmup: int = 1, repeat: int = 5) -> float:
    """Median wall time of fn(*args) in ms, cycling through args_list."""
    for i in range(warmup):
        fn(*args_list[i % len(args_list)])
    times = []
    for i in range(repeat):
        a = args_list[i % len(args_list)]
        t0 = time.perf_counter()
        fn(*a)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def cuda_time_ms(fn: Callable[..., Any], args_list: Sequence[tuple] = ((),), warmup: int = 5, repeat: int = 50) -> float:
    """Median device time of fn(*args) in ms (CUDA events), cycling through args_list so that
    inputs larger than L2 are not re-read from cache."""
    for i in range(warmup):
        fn(*args_list[i % len(args_list)])
    torch.cuda.synchronize()
    times = []
    for i in range(repeat):
        a = args_list[i % len(args_list)]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(*a)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth_gbps(nbytes: int = 1 << 30) -> float:
    """Measured device-to-device copy bandwidth (bytes read + bytes written) in GB/s: the ceiling
    every memory-bound kernel is reported against."""
    n = nbytes // 4
    srcs = [torch.randn(n, device="cuda") for _ in range(2)]
    dst = torch.empty(n, device="cuda")
    ms = cuda_time_ms(lambda s: dst.copy_(s), [(s,) for s in srcs], warmup=3, repeat=20)
    return 2 * n * 4 / (ms * 1e-3) / 1e9


def matmul_tflops(n: int = 8192, dtype: torch.dtype = torch.bfloat16) -> float:
    """Measured dense matmul rate (the compute ceiling) in TFLOP/s on random data."""
    a, b = torch.randn(n, n, device="cuda", dtype=dtype), torch.randn(n, n, device="cuda", dtype=dtype)
    ms = cuda_time_ms(lambda: a @ b, warmup=3, repeat=10)
    return 2 * n**3 / (ms * 1e-3) / 1e12


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except Exception:
        return os.environ.get("KERNELFLOW_COMMIT", "unknown")


def machine_info() -> dict:
    info = {
        "device": device_name(),
        "commit": _commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(sm_count=p.multi_processor_count, capability=f"{p.major}.{p.minor}",
                    cuda=torch.version.cuda, total_memory_gb=round(p.total_memory / 2**30, 1))
    return info


def record(op: str, impl: str, ms: float, shape: Sequence[int] | None = None, dtype: str | None = None,
           nbytes: int | None = None, flops: float | None = None, ceiling_gbps: float | None = None,
           ceiling_tflops: float | None = None, **extra: Any) -> dict:
    """One benchmark row: time, achieved GB/s (bytes read + written once) and TFLOP/s, and the
    fraction of the measured ceilings."""
    r: dict[str, Any] = {"op": op, "impl": impl, "ms": round(ms, 6)}
    if shape is not None:
        r["shape"] = list(shape)
    if dtype is not None:
        r["dtype"] = dtype
    if nbytes:
        r["gbps"] = round(nbytes / (ms * 1e-3) / 1e9, 2)
        if ceiling_gbps:
            r["frac_copy"] = round(r["gbps"] / ceiling_gbps, 4)
    if flops:
        r["tflops"] = round(flops / (ms * 1e-3) / 1e12, 3)
        if ceiling_tflops:
            r["frac_matmul"] = round(r["tflops"] / ceiling_tflops, 4)
    r.update(extra)
    return r


def write_results(path: str, name: str, rows: list[dict], ceilings: dict | None = None, notes: str = "") -> dict:
    """Write {machine, ceilings, rows} as JSON (never pickle) and return it."""
    doc = {"benchmark": name, "machine": machine_info(), "ceilings": ceilings or {}, "rows": rows, "notes": notes}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    return doc
