"""Call every CUDA-backed kernelflow op once on small awkward shapes, for compute-sanitizer.

    compute-sanitizer --tool memcheck  python3 scripts/sanitize_kernels.py
    compute-sanitizer --tool racecheck python3 scripts/sanitize_kernels.py

Shapes: one element, one row, one column, odd sizes that are not multiples of any block or
vector width, an empty table, and non-contiguous (transposed / strided) views, with NaN and inf.
To cover a new op, add one entry to CASES: name -> fn(x, backend) using the public wrapper.
Ops exported by kernelflow.ops without an entry are listed at the end so none is missed silently.
Exits 1 when a call raises.
"""

from __future__ import annotations

import argparse
import sys
import traceback

import numpy as np
import torch

import kernelflow
import kernelflow.ops as ops


def _params(cols: int, device) -> torch.Tensor:
    return torch.as_tensor(ops.transform_params(cols, fill=0.5, lo=-2.0, hi=2.0, shift=0.25, inv_scale=1.5,
                                                offset=-1.0), device=device)


# name -> fn(x [rows, cols] float tensor on the device, backend) -> anything
CASES = {
    "column_stats": lambda x, b: ops.column_stats(x, backend=b),
    "numeric_transform_f32": lambda x, b: ops.numeric_transform(x, _params(x.shape[1], x.device), "float32", backend=b),
    "numeric_transform_f64": lambda x, b: ops.numeric_transform(x, _params(x.shape[1], x.device), "float64", backend=b),
    "numeric_transform_f16": lambda x, b: ops.numeric_transform(x, _params(x.shape[1], x.device), "float16", backend=b),
    "numeric_transform_bf16": lambda x, b: ops.numeric_transform(x, _params(x.shape[1], x.device), "bfloat16", backend=b),
}
# exported names that are helpers or references, not device ops
NOT_OPS = {"transform_params", "merge_stats"}

SHAPES = [(1, 1), (1, 7), (5, 1), (3, 5), (33, 3), (129, 17), (1000, 33), (0, 4), (4097, 2)]


def inputs(device: str):
    gen = torch.Generator().manual_seed(0)
    for rows, cols in SHAPES:
        for dtype in (torch.float32, torch.float64):
            x = torch.randn(rows, cols, generator=gen, dtype=dtype) * 3
            if x.numel():
                x.view(-1)[:: 7] = float("nan")
                x.view(-1)[3:: 11] = float("inf")
            yield f"{rows}x{cols} {dtype}", x.to(device)
    # non-contiguous views: transposed and every other row
    base = torch.randn(65, 40, generator=gen).to(device)
    yield "transposed 40x65", base.t()
    yield "strided rows 33x40", base[::2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", action="append", default=None,
                    help="backends to run (default: cuda; add triton to include the Triton kernels)")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to sanitize")
        return 0
    backends = args.backend or ["cuda"]
    avail = kernelflow.available_backends(args.device)
    failures = 0
    calls = 0
    for b in backends:
        if b not in avail:
            print(f"backend {b!r} unavailable on {args.device} (available: {avail})")
            failures += 1
            continue
        for name, fn in CASES.items():
            for desc, x in inputs(args.device):
                try:
                    fn(x, b)
                    calls += 1
                except Exception:
                    failures += 1
                    print(f"FAIL {name} [{b}] {desc}:\n{traceback.format_exc()}")
        if args.device == "cuda":
            torch.cuda.synchronize()
    exported = [n for n in getattr(ops, "__all__", dir(ops))
                if callable(getattr(ops, n, None)) and not n.endswith("_reference") and n not in NOT_OPS]
    covered = {k.split("_f")[0] if k.startswith("numeric_transform") else k for k in CASES}
    missing = [n for n in exported if n not in covered]
    if missing:
        print("ops without a sanitizer case (add them to CASES):", ", ".join(missing))
    print(f"sanitize_kernels: {calls} calls, {failures} failures, backends {backends}")
    return 1 if failures else 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
