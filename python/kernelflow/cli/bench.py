"""``kernelflow bench``: benchmarks against peers in the same run. Suites: ``preprocess`` (CPU;
GPU too when CUDA is available) and ``int8`` (Int8Linear vs torch fp32 and dynamic int8 on the CPU)."""

from __future__ import annotations

import argparse
from typing import Any

from kernelflow.cli._common import check_sizes

ORDER = 20


SUITES = ("preprocess", "int8")


def _int8_suite(args: argparse.Namespace) -> tuple[list[dict], dict, bool]:
    from kernelflow.bench.int8 import run_int8  # noqa: PLC0415
    from kernelflow.bench.preprocess import format_table  # noqa: PLC0415

    print(f"\nInt8Linear on the CPU, K = N = {args.int8_k}, interleaved with its peers, median of {args.repeat}")
    res = run_int8(tuple(args.int8_m), args.int8_k, args.int8_k, args.repeat, progress=lambda s: print(f"  ... {s}"))
    print(format_table(res["rows"], [("impl", "impl"), ("shape", "M,N,K"), ("ms", "ms"), ("gops", "GOP/s"),
                                     ("frac_fp32_matmul", "of fp32 mm"), ("speedup_vs_torch_fp32", "x fp32"),
                                     ("speedup_vs_torch_dynamic_int8", "x dyn int8"), ("path", "path")]))
    for k, v in res["skipped"].items():
        print(f"skipped {k}: {v}")
    print(f"fp32 matmul ceiling {res['ceilings']['fp32_matmul_gflops']} GFLOP/s; W8A8 exact: {res['exact']}")
    return res["rows"], res["ceilings"], not res["exact"]


def cmd_bench(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415

    suites = set(args.suite or ["preprocess"])
    if "all" in suites:
        suites = set(SUITES)
    if "preprocess" not in suites:
        rows, ceilings, failed = _int8_suite(args)
        if args.out:
            write_results_ = __import__("kernelflow.bench.timing", fromlist=["write_results"]).write_results
            write_results_(args.out, "kernelflow_bench", rows, ceilings=ceilings,
                           notes="CPU shared with other work: medians of interleaved runs")
            print(f"wrote {args.out}")
        return 1 if failed else 0

    from kernelflow.bench.preprocess import format_table, run_cpu, run_gpu  # noqa: PLC0415
    from kernelflow.bench.timing import write_results  # noqa: PLC0415

    print(f"CPU preprocessing (impute mean + standard scale): float32 [{args.rows}, {args.cols}], {args.nan:.0%} NaN")
    res = run_cpu(args.rows, args.cols, args.nan, args.repeat, backend=args.cpu_backend, impls=args.impl)
    print(format_table(res["rows"], [("op", "op"), ("impl", "impl"), ("ms", "ms"), ("gbps", "GB/s"),
                                     ("speedup_vs_sklearn", "x sklearn"),
                                     ("max_rel_diff_vs_float64", "diff vs f64")]))
    for k, v in res["skipped"].items():
        print(f"skipped {k}: {v}")
    rows: list[dict[str, Any]] = [dict(r, suite="cpu_preprocess") for r in res["rows"]]
    ceilings: dict = {}
    notes = res["notes"]
    failed = not res["fused_ok"] and "kernelflow_fused" not in res["skipped"]
    if torch.cuda.is_available() and not args.no_gpu:
        print(f"\nGPU preprocessing on {torch.cuda.get_device_name()}")
        shapes = ((args.gpu_rows, args.cols),)
        g = run_gpu(shapes, args.nan)
        print(format_table(g["rows"], [("op", "op"), ("impl", "impl"), ("ms", "ms"), ("gbps", "GB/s"),
                                       ("frac_copy", "of copy"), ("correct", "ok")]))
        print(f"copy bandwidth {g['ceilings']['copy_gbps']} GB/s")
        for f in g["failures"]:
            print("FAIL:", f)
        rows += [dict(r, suite="gpu_preprocess") for r in g["rows"]]
        ceilings = g["ceilings"]
        notes += " GPU: " + g["notes"]
        failed = failed or bool(g["failures"])
    elif not args.no_gpu:
        print("\n(no CUDA device: GPU benchmarks skipped)")
    if "int8" in suites:
        r8, c8, f8 = _int8_suite(args)
        rows += r8
        ceilings = dict(ceilings, **c8)
        failed = failed or f8
    if args.out:
        write_results(args.out, "kernelflow_bench", rows, ceilings=ceilings, notes=notes)
        print(f"wrote {args.out}")
    return 1 if failed else 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="preprocessing benchmarks (CPU; GPU too when CUDA is available)")
    p.add_argument("--rows", type=int, default=1_000_000, help="CPU rows (default 1000000)")
    p.add_argument("--cols", type=int, default=32)
    p.add_argument("--nan", type=float, default=0.05)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--gpu-rows", type=int, default=16_000_000, help="GPU rows (default 16000000)")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU benchmarks")
    p.add_argument("--cpu-backend", default="cpu", choices=["cpu", "torch", "triton"])
    p.add_argument("--impl", action="append", help="CPU implementations to run (repeatable; default all)")
    p.add_argument("--suite", action="append", choices=SUITES + ("all",),
                   help="benchmark suite (repeatable; default preprocess)")
    p.add_argument("--int8-m", type=int, nargs="+", default=[1, 64, 1024], help="int8 suite: batch sizes M")
    p.add_argument("--int8-k", type=int, default=4096, help="int8 suite: K = N")
    p.add_argument("--out", help="write the results as JSON here")
    p.set_defaults(func=cmd_bench, check=check_sizes)
