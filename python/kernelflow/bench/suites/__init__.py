"""The benchmark suites, one module per op family, each ``run(cfg, progress) -> result`` with

    result = {"rows": [row, ...], "skipped": {impl: why}, "checks": {name: value},
              "failures": [message, ...], "notes": str, "ceilings": {...} (optional)}

A row is ``{"suite", "op", "impl", "shape", "ms"}`` plus ``gbps`` (bytes the op must move, read
once and written once) or ``gops`` (2 M N K style operation count), and for kernelflow rows its
``path`` (the CPU code path that ran). The runner adds the fractions of the ceilings and the
speedups over every peer measured in the same group. Correctness is checked before timing; a
failure makes ``kernelflow bench`` exit 1.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

SUITES = ("preprocess", "table", "quantile", "norm", "distill", "int8")


@dataclasses.dataclass
class BenchConfig:
    """Sizes and method for one ``kernelflow bench`` run (see ``quick`` for the tiny sizes)."""

    rows: int = 1_000_000           # preprocess, quantile (and table unless table_rows)
    cols: int = 32                  # preprocess, quantile; table: 3/4 numeric, 1/4 categorical
    table_rows: int | None = None   # table (its scikit-learn peer holds ~10 GB per million rows)
    nan: float = 0.05
    repeat: int = 5
    threads: int | None = None      # torch / numba / OpenMP threads (None: as found)
    compile: bool = True            # time torch.compile peers (compiled in the warm-up)
    cpu_backend: str = "cpu"
    impls: list[str] | None = None  # preprocess suite: run only these
    norm_rows: int = 8192
    norm_hidden: tuple[int, ...] = (1024, 4096)
    distill_rows: int = 4096
    distill_classes: int = 8192
    int8_m: tuple[int, ...] = (1, 64, 1024)
    int8_k: int = 4096
    quantiles: tuple[float, ...] = (0.25, 0.5, 0.75)
    gpu: bool = True                # GPU suites when CUDA is available
    gpu_rows: int = 16_000_000
    quick: bool = False

    @classmethod
    def quick_sizes(cls, **overrides) -> "BenchConfig":
        """Tiny sizes for tests and smoke runs: every code path in seconds (timings meaningless)."""
        base = dict(rows=2000, cols=8, repeat=1, compile=False, norm_rows=64, norm_hidden=(64, 160),
                    distill_rows=64, distill_classes=100, int8_m=(1, 9), int8_k=64, gpu_rows=4096, quick=True)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


def suite(name: str):
    """The suite module ``kernelflow.bench.suites.<name>``."""
    if name not in SUITES:
        raise ValueError(f"suite must be one of {SUITES}, got {name!r}")
    return importlib.import_module(f"kernelflow.bench.suites.{name}")


Progress = Callable[[str], None]
