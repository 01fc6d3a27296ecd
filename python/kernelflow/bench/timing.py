"""Timing, the GPU ceilings and the machine record.

GPU: CUDA events around each call, warm-up first, median of many runs; inputs larger than L2 are
rotated by the caller (pass a list of argument tuples). CPU: perf_counter, median of repeats;
``interleaved_ms`` runs peers round-robin so that load from other processes on a shared machine
hits every implementation alike. Every result is a plain dict (``record``) written as JSON with
the machine (CPU model, ISA, load), commit and date. The CPU ceilings live in ``ceilings``.
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


def interleaved_ms(fns: dict[str, Callable[[], Any]], repeat: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median wall time in ms of each zero-argument callable, warm-up first, then ``repeat``
    rounds that each call every implementation once (round-robin, so a burst of load from other
    processes is shared by all of them rather than landing on one)."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(1, repeat)):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


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
    return f"CPU: {cpu_model()['cpu_model']}, {os.cpu_count()} cores"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except Exception:
        return os.environ.get("KERNELFLOW_COMMIT", "unknown")


_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def cpu_model() -> dict:
    """CPU model name and the SIMD flags that pick kernel paths (from /proc/cpuinfo, as lscpu
    shows them), plus the kernelflow level chosen at run time."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = val.strip()
                elif key == "flags":
                    flags = set(val.split())
                    break
    except OSError:  # not Linux: the model from platform only
        pass
    out: dict[str, Any] = {"cpu_model": model, "isa_flags": [f for f in _ISA_FLAGS if f in flags]}
    try:
        from kernelflow._ext import ext  # noqa: PLC0415

        C = ext()
        if C is not None and hasattr(C, "cpu_isa"):
            out["kernelflow_cpu_isa"] = C.cpu_isa()
    except Exception:  # the record must not fail on a broken build
        pass
    return out


def cpu_summary() -> str:
    """One line for a benchmark's notes: model, core count, SIMD flags and kernelflow's level."""
    c = cpu_model()
    level = f", kernelflow level {c['kernelflow_cpu_isa']}" if "kernelflow_cpu_isa" in c else ""
    return f"{c['cpu_model']}, {os.cpu_count()} CPUs, ISA {' '.join(c['isa_flags']) or 'baseline x86-64'}{level}"


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (other work on a shared machine), None where unknown."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info() -> dict:
    info = {
        "device": device_name(),
        "commit": _commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
        **cpu_model(),
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


def write_results(path: str, name: str, rows: list[dict], ceilings: dict | None = None, notes: str = "",
                  machine: dict | None = None) -> dict:
    """Write {machine, ceilings, rows} as JSON (never pickle) and return it; ``machine`` adds
    fields (CPU description, load) to the machine block."""
    doc = {"benchmark": name, "machine": machine_info() | (machine or {}), "ceilings": ceilings or {}, "rows": rows,
           "notes": notes}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    return doc
