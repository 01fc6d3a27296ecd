"""GPU benchmark: column_stats and numeric_transform (float32 -> float32 / bfloat16) on the
kernelflow cuda and triton backends vs torch eager and torch.compile of the same formulas.

    PYTHONPATH=python python benchmarks/gpu_preprocess.py [OUT.json]

Inputs (16M x 32 and 1M x 32 float32, 5% NaN) are rotated across buffers larger than L2; every
implementation is checked against the float64 reference before it is timed. Reports ms, GB/s and
the fraction of the measured device-to-device copy bandwidth. ``main(out_path)`` is what
scripts/gpu_check.sh calls; it returns 1 when a result is wrong or an implementation fails.
"""

from __future__ import annotations

import os
import sys

import torch

from kernelflow.bench.preprocess import format_table, run_gpu
from kernelflow.bench.timing import write_results

SHAPES = ((16_000_000, 32), (1_000_000, 32))


def main(out_path: str | None = None) -> int:
    if not torch.cuda.is_available():
        print("gpu_preprocess: no CUDA device, nothing to do")
        return 0
    out_path = out_path or os.path.join("gpu_out", "gpu_preprocess.json")
    res = run_gpu(SHAPES, log=print)
    notes = res["notes"] + ("" if not res["failures"] else " FAILURES: " + "; ".join(res["failures"]))
    doc = write_results(out_path, "gpu_preprocess", res["rows"], ceilings=res["ceilings"], notes=notes)
    print(format_table(doc["rows"], [("op", "op"), ("impl", "impl"), ("shape", "shape"), ("ms", "ms"),
                                     ("gbps", "GB/s"), ("frac_copy", "of copy"), ("correct", "ok")]))
    print(f"copy bandwidth {res['ceilings']['copy_gbps']} GB/s; wrote {out_path}")
    for f in res["failures"]:
        print("FAIL:", f, file=sys.stderr)
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
