"""Int8Linear (w8a8 and weight-only, weights packed once) against torch float32 nn.Linear and
torch's dynamic int8 at K = N = 4096, M in {1, 64, 1024}, interleaved in one process, on every
CPU int8 code path this CPU has (the best one, then AVX2 forced: the numbers an AVX2-only CPU
would see from the same kernels), each checked against the exact integer reference.

    python benchmarks/bench_int8_linear_cpu.py [out.json] [--m 1 64 1024] [--k 4096] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess

import torch

from kernelflow.bench.int8 import run_int8
from kernelflow.bench.preprocess import format_table
from kernelflow.bench.timing import write_results
from kernelflow.ops.int8_gemm import cpu_path, cpu_paths, set_cpu_path


def cpu_model() -> dict:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except Exception:
        return {}
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = info.get("Flags", "").split()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return {"cpu_model": info.get("Model name", "").strip(), "isa": isa}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=os.path.join(os.path.dirname(__file__), "results", "int8_linear_cpu.json"))
    ap.add_argument("--m", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    rows, ceilings, ok = [], {}, True
    paths = [cpu_path()] + [p for p in ("avx2",) if p in cpu_paths() and p != cpu_path()]
    try:
        for p in paths:
            set_cpu_path(p)
            res = run_int8(tuple(a.m), a.k, a.k, a.repeat)
            print(f"path {p}")
            print(format_table(res["rows"], [("impl", "impl"), ("shape", "M,N,K"), ("ms", "ms"), ("gops", "GOP/s"),
                                             ("speedup_vs_torch_fp32", "x fp32"),
                                             ("speedup_vs_torch_dynamic_int8", "x dyn int8")]))
            rows += [dict(r, forced_path=p) for r in res["rows"]]
            ceilings[f"fp32_matmul_gflops_{p}_run"] = res["ceilings"]["fp32_matmul_gflops"]
            ok = ok and res["exact"]
    finally:
        set_cpu_path("auto")
    notes = (f"{cpu_model()}; {torch.get_num_threads()} threads; the machine was shared with other work "
             "(medians of interleaved runs; the load inflates times to scheduler quanta). "
             "Peers: torch fp32 nn.Linear, torch.ao dynamic int8.")
    write_results(a.out, "int8_linear_cpu", rows, ceilings=ceilings, notes=notes)
    print(f"wrote {a.out}; exact: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
