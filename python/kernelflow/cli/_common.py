"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import time


def print_kv(d: dict, indent: str = "") -> None:
    w = max((len(k) for k in d), default=0)
    for k, v in d.items():
        if isinstance(v, dict):
            print(f"{indent}{k}:")
            print_kv(v, indent + "  ")
        else:
            if isinstance(v, (list, tuple)):
                v = ", ".join(map(str, v)) or "-"
            print(f"{indent}{k.ljust(w)}  {v}")


def median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def check_sizes(args: argparse.Namespace) -> str | None:
    """The positive-size and NaN-fraction rules of the synthetic-data options ('' when fine)."""
    for name in ("rows", "cols", "repeat", "gpu_rows"):
        if getattr(args, name, 1) is not None and getattr(args, name, 1) < 1:
            return f"--{name.replace('_', '-')} must be >= 1"
    if hasattr(args, "nan") and not 0 <= args.nan < 1:
        return "--nan must be in [0, 1)"
    return None
