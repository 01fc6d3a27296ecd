"""``kernelflow bench``: every op family against its peers in the same run, with the fraction of
the ceilings measured in that run. Suites: preprocess (CPU; GPU too when CUDA is available),
table, quantile, norm, distill, int8; ``--quick`` runs them all at tiny sizes in seconds."""

from __future__ import annotations

import argparse

from kernelflow.cli._common import check_sizes

ORDER = 20

SUITES = ("preprocess", "table", "quantile", "norm", "distill", "int8")

# options that --quick leaves alone when given; None = the suite default (or the quick size)
_SIZE_OPTS = ("rows", "cols", "table_rows", "repeat", "norm_rows", "norm_hidden", "distill_rows", "distill_classes", "int8_m",
              "int8_k", "gpu_rows")


def _check(args: argparse.Namespace) -> str | None:
    msg = check_sizes(args)
    if msg:
        return msg
    for name in ("threads", "table_rows", "norm_rows", "distill_rows", "distill_classes", "int8_k"):
        v = getattr(args, name)
        if v is not None and v < 1:
            return f"--{name.replace('_', '-')} must be >= 1"
    for name in ("norm_hidden", "int8_m"):
        v = getattr(args, name)
        if v is not None and min(v) < 1:
            return f"--{name.replace('_', '-')} values must be >= 1"
    return None


def config(args: argparse.Namespace):
    """The BenchConfig the options describe (``--quick``: tiny sizes unless a size is given)."""
    from kernelflow.bench.suites import BenchConfig  # noqa: PLC0415

    given = {k: (tuple(v) if isinstance(v, list) else v) for k in _SIZE_OPTS if (v := getattr(args, k)) is not None}
    common = dict(nan=args.nan, threads=args.threads, cpu_backend=args.cpu_backend, impls=args.impl,
                  gpu=not args.no_gpu, compile=args.compile)
    if args.quick:
        return BenchConfig.quick_sizes(**given, **common)
    if common["compile"] is None:
        common["compile"] = True
    return BenchConfig(**given, **common)


def cmd_bench(args: argparse.Namespace) -> int:
    from kernelflow.bench.report import plot, summary, write_json  # noqa: PLC0415
    from kernelflow.bench.runner import run_suites  # noqa: PLC0415

    names = list(dict.fromkeys(args.suite or ["all"]))
    if "all" in names:
        names = list(SUITES)
    cfg = config(args)
    doc = run_suites(names, cfg, progress=not args.no_progress)
    print(summary(doc))
    if args.out:
        print(f"wrote {write_json(doc, args.out)}")
    if args.plot:
        for p in plot(doc, args.plot):
            print(f"wrote {p}")
    for f in doc["failures"]:
        print(f"FAIL: {f}")
    return 1 if doc["failures"] else 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="every op family against its peers in the same run (CPU; GPU when present)",
                       description=__doc__)
    p.add_argument("--suite", action="append", choices=SUITES + ("all",),
                   help="suite to run (repeatable; default all)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and one repeat, torch.compile off: every code path in seconds, timings meaningless")
    p.add_argument("--rows", type=int, help="preprocess / quantile rows, table too unless --table-rows (default 1000000)")
    p.add_argument("--table-rows", type=int, help="table suite rows (default --rows; its scikit-learn peer needs ~10 GB "
                                                  "of memory per million rows)")
    p.add_argument("--cols", type=int, help="preprocess / quantile columns; table: 3/4 numeric, 1/4 string (default 32)")
    p.add_argument("--nan", type=float, default=0.05, help="fraction of missing values (default 0.05)")
    p.add_argument("--repeat", type=int, help="timed rounds per measurement, median taken (default 5)")
    p.add_argument("--threads", type=int, help="torch / OpenMP / numba threads (default: as found)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="time torch.compile peers (default on, off with --quick)")
    p.add_argument("--norm-rows", type=int, help="norm suite rows (default 8192)")
    p.add_argument("--norm-hidden", type=int, nargs="+", help="norm suite hidden sizes (default 1024 4096)")
    p.add_argument("--distill-rows", type=int, help="distill suite rows (default 4096)")
    p.add_argument("--distill-classes", type=int, help="distill suite classes (default 8192)")
    p.add_argument("--int8-m", type=int, nargs="+", help="int8 suite batch sizes M (default 1 64 1024)")
    p.add_argument("--int8-k", type=int, help="int8 suite K = N (default 4096)")
    p.add_argument("--gpu-rows", type=int, help="GPU preprocess rows (default 16000000)")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU runs")
    p.add_argument("--cpu-backend", default="cpu", choices=["cpu", "torch", "triton"],
                   help="kernelflow backend on CPU tensors (default cpu)")
    p.add_argument("--impl", action="append", help="preprocess suite: implementations to run (repeatable)")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--plot", metavar="DIR", help="write one PNG per suite into DIR (matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench, check=_check)
