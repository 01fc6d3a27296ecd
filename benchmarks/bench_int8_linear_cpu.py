"""Int8Linear (w8a8 and weight-only, weights packed once) against torch float32 nn.Linear and
torch's dynamic int8 at K = N = 4096, M in {1, 64, 1024}, interleaved in one process, on every
CPU code path this CPU has (the best one, e.g. amx; then avx512 = AVX512-VNNI forced where the best
is amx; then AVX2 forced: the numbers an AVX2-only CPU would see from the same kernels), each
checked against the exact integer reference.

Runs: each path with 2 threads timed by the wall clock (what a user sees)
and with 1 thread timed by the thread's CPU time (immune to the other processes of a shared
machine, which inflate 2-thread wall times to scheduler quanta; torch spins up its OpenMP team
even for small calls and suffers most). The AVX2 runs are child processes with every level forced down to AVX2 where torch allows it
(KERNELFLOW_CPU_ISA=avx2 for kernelflow; MKL_ENABLE_INSTRUCTIONS=AVX2, ONEDNN_MAX_CPU_ISA=AVX2 and
ATEN_CPU_CAPABILITY=avx2 for torch's fp32 matmul), so its fp32 peer and fp32 ceiling are AVX2 too.
torch's dynamic int8 (fbgemm) has no such switch and keeps its best kernels: the AVX2 row's ratio
against it is pessimistic for an AVX2-only CPU.

    python benchmarks/bench_int8_linear_cpu.py [out.json] [--m 1 64 1024] [--k 4096] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch

from kernelflow.bench.int8 import run_int8
from kernelflow.bench.preprocess import format_table
from kernelflow.bench.timing import write_results

AVX2_ENV = {"KERNELFLOW_CPU_ISA": "avx2", "KERNELFLOW_INT8_PATH": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def cpu_model() -> dict:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except Exception:
        return {}
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = info.get("Flags", "").split()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
                       "amx_int8", "amx_bf16") if f in flags]
    return {"cpu_model": info.get("Model name", "").strip(), "isa": isa}


def one_run(a) -> dict:
    """Every implementation at every M on the current (possibly forced) path."""
    from kernelflow._ext import require_ext  # noqa: PLC0415

    res = run_int8(tuple(a.m), a.k, a.k, a.repeat, timer=a.timer)
    C = require_ext()
    res["paths"] = {"int8": C.int8_cpu_path(), "quant": C.quant_cpu_path(), "cpu_isa": C.cpu_isa(),
                    "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    return res


def summary(rows: list[dict]) -> list[dict]:
    """Per path and M: the must-show ratios (w8a8 / weight-only vs fp32 and vs dynamic int8)."""
    out = []
    for r in rows:
        if r["impl"].startswith("kernelflow"):
            out.append({"run": r["run"], "impl": r["impl"], "M": r["shape"][0],
                        "x_fp32": r.get("speedup_vs_torch_fp32"), "x_dynamic_int8": r.get("speedup_vs_torch_dynamic_int8"),
                        "frac_fp32_matmul": r["frac_fp32_matmul"],
                        "meets_1p5x_fp32": (r.get("speedup_vs_torch_fp32") or 0) >= 1.5,
                        "not_slower_than_dynamic_int8": (r.get("speedup_vs_torch_dynamic_int8") or 0) >= 1.0})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=os.path.join(os.path.dirname(__file__), "results", "int8_linear_cpu.json"))
    ap.add_argument("--m", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--child", help=argparse.SUPPRESS)  # write this process's run as JSON there
    ap.add_argument("--timer", default="wall", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        with open(a.child, "w") as f:
            json.dump(one_run(a), f)
        return 0
    from kernelflow._ext import require_ext  # noqa: PLC0415

    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    best = require_ext().int8_cpu_path()
    avail = require_ext().int8_cpu_paths()
    runs = {f"{best}_2t_wall": one_run(a)}

    def child(label: str, env: dict, timer: str) -> None:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "run.json")
            cmd = [sys.executable, os.path.abspath(__file__), "--child", out, "--timer", timer, "--k", str(a.k),
                   "--repeat", str(a.repeat), "--m", *map(str, a.m)]
            subprocess.run(cmd, env={**os.environ, **env}, check=True)
            with open(out) as f:
                runs[label] = json.load(f)

    one = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    vnni = {"KERNELFLOW_INT8_PATH": "avx512"}  # the AVX512-VNNI / FMA kernels on an AMX machine
    lower = ([("avx512", vnni)] if best == "amx" and "avx512" in avail else []) + \
            ([("avx2", AVX2_ENV)] if best != "avx2" and "avx2" in avail else [])
    for label, env in lower:
        child(f"{label}_2t_wall", env, "wall")
    child(f"{best}_1t_thread", one, "thread")
    for label, env in lower:
        child(f"{label}_1t_thread", {**env, **one}, "thread")
    rows, ceilings, ok, paths = [], {}, True, {}
    for p, res in runs.items():
        print(f"path {p}: {res['paths']}")
        print(format_table(res["rows"], [("impl", "impl"), ("shape", "M,N,K"), ("ms", "ms"), ("gops", "GOP/s"),
                                         ("frac_fp32_matmul", "x ceiling"), ("speedup_vs_torch_fp32", "x fp32"),
                                         ("speedup_vs_torch_dynamic_int8", "x dyn int8")]))
        rows += [dict(r, forced_path=p.split("_")[0], run=p, threads=int(p.split("_")[1][:-1])) for r in res["rows"]]
        ceilings[f"fp32_matmul_gflops_{p}_run"] = res["ceilings"]["fp32_matmul_gflops"]
        paths[p] = res["paths"]
        ok = ok and res["exact"]
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    notes = (f"{cpu_model()}; {torch.get_num_threads()} threads; the machine was shared with other builds and "
             f"benchmarks (load average {load_start} at the start, {load} at the end, on 2 cores), so times are "
             "medians of interleaved runs and "
             "absolute numbers are inflated by the load; ratios are from the same run. Peers: torch fp32 nn.Linear, "
             "torch.ao dynamic int8 (fbgemm). The avx2 run forces kernelflow, MKL, oneDNN and ATen to AVX2 "
             f"({AVX2_ENV}); fbgemm keeps its AVX-512 kernels there. Code paths per run: {paths}.")
    doc = write_results(a.out, "int8_linear_cpu", rows, ceilings=ceilings, notes=notes,
                        machine={**cpu_model(), "loadavg_start": load_start, "loadavg_end": load})
    doc["summary"] = summary(rows)
    doc["exact_vs_integer_reference"] = ok
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
    for s in doc["summary"]:
        print(s)
    print(f"wrote {a.out}; exact: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
