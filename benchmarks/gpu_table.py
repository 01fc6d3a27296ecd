"""GPU benchmark: the fused whole-table transform (one launch writes the model input matrix)
on the kernelflow cuda and triton backends vs the same pipeline written in torch ops, eager and
under torch.compile.

    PYTHONPATH=python python benchmarks/gpu_table.py [OUT.json]

Table: N rows x 24 float32 numeric columns (5% NaN; mean imputation, standard scaling) + 8
categorical columns with 50 categories each (one-hot, unknown -> zeros), written as float32 and
bfloat16 [N, 424]. Bytes = numeric input + codes read once + output written once. Inputs rotate
across two sets; every implementation is checked against the float64 reference first.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

from kernelflow import ops
from kernelflow.bench.timing import copy_bandwidth_gbps, cuda_time_ms, record, write_results

N_ROWS = (4_000_000, 16_000_000)
FN, FC, K = 24, 8, 50


def make_spec(seed=0):
    g = np.random.default_rng(seed)
    params = np.vstack([ops.transform_params(FN, fill=g.normal(size=FN), shift=g.normal(size=FN),
                                             inv_scale=g.uniform(0.5, 2, FN)), np.zeros((1, FN))])
    cats = [dict(off=FN + c * K, width=K, mode="onehot", slots=np.arange(K), unknown_slot=-1) for c in range(FC)]
    return ops.TableSpec.build(FN + FC * K, params, list(range(FN)), cats=cats)


def make_inputs(n, seed, device="cuda"):
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(n, FN, device=device, generator=g)
    x[torch.rand(n, FN, device=device, generator=g) < 0.05] = float("nan")
    codes = torch.randint(-1, K, (n, FC), device=device, generator=g, dtype=torch.int32)
    return x, codes


def torch_pipeline(spec):
    """The same transform in torch ops: impute, scale, one-hot by comparison, concatenated."""
    p = spec.params.to("cuda", torch.float32)
    ar = torch.arange(K, device="cuda", dtype=torch.int32)

    def f(x, codes, dtype):
        num = (torch.where(torch.isnan(x), p[0], x) - p[3]) * p[4] + p[5]
        hot = (codes[:, :, None] == ar).reshape(codes.shape[0], FC * K)
        return torch.cat([num, hot.to(num.dtype)], 1).to(dtype)

    return f


def main(out_path: str | None = None) -> int:
    if not torch.cuda.is_available():
        print("gpu_table: no CUDA device, nothing to do")
        return 0
    out_path = out_path or os.path.join("gpu_out", "gpu_table.json")
    copy = copy_bandwidth_gbps()
    spec = make_spec().to("cuda")
    eager = torch_pipeline(spec)
    compiled = torch.compile(eager)
    rows, failures = [], []
    for n in N_ROWS:
        free = torch.cuda.mem_get_info()[0]
        need = 2 * n * (FN + FC) * 4 + n * spec.W * 4 * 2
        if need > 0.8 * free:
            print(f"gpu_table: skipping {n} rows ({need / 2**30:.1f} GiB needed)")
            continue
        sets = [make_inputs(n, s) for s in (1, 2)]
        small = (sets[0][0][:4096], sets[0][1][:4096])
        ref = ops.table_transform_reference(*small, spec, torch.float64)
        for dt in (torch.float32, torch.bfloat16):
            out = torch.empty(n, spec.W, device="cuda", dtype=dt)
            nbytes = n * (FN + FC) * 4 + n * spec.W * out.element_size()
            impls = {
                "kernelflow_cuda": lambda x, c: ops.table_transform(x, c, spec, out=out, backend="cuda"),
                "kernelflow_triton": lambda x, c: ops.table_transform(x, c, spec, out=out, backend="triton"),
                "torch_eager": lambda x, c: eager(x, c, dt),
                "torch_compile": lambda x, c: compiled(x, c, dt),
            }
            for name, fn in impls.items():
                try:
                    got = fn(*small)
                    got = got[:4096] if got.shape[0] != 4096 else got
                    tol = 1e-5 if dt == torch.float32 else 1e-2
                    ok = torch.allclose(got.double().nan_to_num(), ref.nan_to_num().to(got.device), rtol=tol, atol=tol)
                    if not ok:
                        failures.append(f"{name} {n} {dt} wrong")
                    ms = cuda_time_ms(fn, sets, warmup=3, repeat=20)
                    rows.append(record("table_transform", name, ms, shape=(n, spec.W), dtype=str(dt).replace("torch.", ""),
                                       nbytes=nbytes, ceiling_gbps=copy, correct=bool(ok)))
                    print(rows[-1])
                except Exception as e:  # one failing implementation must not hide the others
                    failures.append(f"{name} {n} {dt}: {type(e).__name__}: {e}")
            del out
        del sets
        torch.cuda.empty_cache()
    notes = f"copy bandwidth {copy:.0f} GB/s" + ("" if not failures else " FAILURES: " + "; ".join(failures))
    write_results(out_path, "gpu_table", rows, ceilings={"copy_gbps": round(copy, 1)}, notes=notes)
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
