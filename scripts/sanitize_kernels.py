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


def _codes(x: torch.Tensor, k: int) -> torch.Tensor:
    """int32 codes in [-2, k) derived from x (unknown and missing included)."""
    return (torch.nan_to_num(x, nan=-1.0, posinf=7.0, neginf=-2.0).abs().floor() % (k + 2) - 2).to(torch.int32)


def _table(x: torch.Tensor, b: str):
    cols = x.shape[1]
    params = np.vstack([ops.transform_params(cols, fill=0.5, shift=0.25, inv_scale=1.5),
                        [[(j % 5) for j in range(cols)]], np.full((1, cols), 0.5)])
    cats = [dict(off=cols + 1, width=3, mode="onehot", slots=[0, 1, 2, -1], unknown_slot=2),
            dict(off=cols + 4, width=1, mode="ordinal", slots=[0, 1, 2], unknown_value=-1.0)]
    spec = ops.TableSpec.build(cols + 5, params, list(range(cols)), ind_src=[0], ind_out=[cols], cats=cats).to(x.device)
    codes = torch.cat([_codes(x[:, :1], 4), _codes(x[:, :1] * 2, 3)], 1)
    return ops.table_transform(x, codes, spec, backend=b)


def _norms(x: torch.Tensor, b: str):
    if x.dtype != torch.float32:
        x = x.float()
    x = torch.nan_to_num(x).requires_grad_(True)
    w = torch.ones(x.shape[1], device=x.device, requires_grad=True)
    bias = torch.zeros(x.shape[1], device=x.device, requires_grad=True)
    y = ops.layer_norm(x, (x.shape[1],), w, bias, backend=b) + ops.rms_norm(x, (x.shape[1],), w, backend=b)
    y.sum().backward()


def _distill(x: torch.Tensor, b: str):
    s = torch.nan_to_num(x.float()).requires_grad_(True)
    t = torch.nan_to_num(x.float()).flip(0)
    labels = torch.arange(x.shape[0], device=x.device) % x.shape[1]
    loss = ops.distill_loss(s, t, labels, temperature=2.0, alpha=0.5, backend=b)
    loss.sum().backward()


def _int8(x: torch.Tensor, b: str):
    xf = torch.nan_to_num(x.float(), posinf=3.0, neginf=-3.0)
    q, sx = ops.quantize_rows(xf, backend=b)
    w = xf.t().contiguous()[: max(1, xf.shape[1]), :]  # [N = cols, K = cols]
    wq, sw = ops.quantize_rows(torch.nan_to_num(xf[: xf.shape[1]].t().contiguous()) if xf.shape[0] >= xf.shape[1]
                               else torch.randn(xf.shape[1], xf.shape[1], device=x.device), backend=b)
    ops.int8_gemm(q, wq, sx, sw, backend=b)
    ops.weight_only_gemm(xf, wq, sw, backend=b)
    ops.dequantize(q, sx, backend=b)
    del w


# name -> fn(x [rows, cols] float tensor on the device, backend) -> anything
CASES = {
    "column_quantiles": lambda x, b: ops.column_quantiles(x, [0.0, 0.25, 0.5, 0.99, 1.0], backend=b),
    "table_transform": _table,
    "layer_norm": _norms,
    "distill_loss": _distill,
    "int8_gemm": _int8,
    "column_stats": lambda x, b: ops.column_stats(x, backend=b),
    "numeric_transform_f32": lambda x, b: ops.numeric_transform(x, _params(x.shape[1], x.device), "float32", backend=b),
    "numeric_transform_f64": lambda x, b: ops.numeric_transform(x, _params(x.shape[1], x.device), "float64", backend=b),
    "numeric_transform_f16": lambda x, b: ops.numeric_transform(x, _params(x.shape[1], x.device), "float16", backend=b),
    "numeric_transform_bf16": lambda x, b: ops.numeric_transform(x, _params(x.shape[1], x.device), "bfloat16", backend=b),
}
# exported names that are helpers or references, not device ops
NOT_OPS = {"transform_params", "merge_stats", "encode_strings", "integer_categories", "map_codes",
           "infrequent_mask", "infrequent_mapping", "nonlinear_reference", "int8_gemm_exact", "QuantileSketch",
           "TableSpec", "OneHotLayout", "OrdinalLayout", "EncodedColumn", "FN_CODES",
           # covered inside a composite case above
           "rms_norm", "weight_only_gemm", "quantize_rows", "quantize_activation", "quantize_weight", "dequantize",
           "quantize_static", "one_hot", "ordinal_encode"}

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
