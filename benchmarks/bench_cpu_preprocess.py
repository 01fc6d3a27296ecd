"""CPU benchmark: SimpleImputer(mean) -> StandardScaler, scikit-learn vs kernelflow vs numpy vs numba.

    PYTHONPATH=python python benchmarks/bench_cpu_preprocess.py --rows 1000000 --cols 32 --nan 0.05

Measures fit (column statistics), transform (fresh and into a reused output) and fit+transform for
each implementation on the same float32 data (interleaved, median of --repeat runs), with GB/s, the
fraction of the copy bandwidth measured in the same run and speedups against scikit-learn, and checks
that kernelflow's fused path (one column_stats + one numeric_transform pass) equals the scikit-learn
pipeline (run on a float64 copy) to 1e-5. Writes JSON (benchmarks/results/cpu_preprocess_<machine>_<rows>x<cols>.json
unless --out is given). Exits 1 when the fused result differs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from kernelflow.bench.ceilings import cpu_ceilings
from kernelflow.bench.report import format_table, jsonable
from kernelflow.bench.runner import annotate
from kernelflow.bench.suites.preprocess import run_cpu
from kernelflow.bench.timing import write_results

HERE = os.path.dirname(os.path.abspath(__file__))


def default_out(rows: int, cols: int) -> str:
    machine = f"{platform.machine()}-{os.cpu_count()}core"
    return os.path.join(HERE, "results", f"cpu_preprocess_{machine}_{rows}x{cols}.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--nan", type=float, default=0.05, help="fraction of NaN entries")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median)")
    ap.add_argument("--backend", default="cpu", help="kernelflow backend for the fused path and estimators")
    ap.add_argument("--impl", action="append", default=None,
                    help="run only these implementations (repeatable): sklearn, kernelflow_fused, "
                         "kernelflow_estimators, numpy, numba_parallel")
    ap.add_argument("--out", default=None, help="JSON output path")
    args = ap.parse_args(argv)
    if args.rows < 1 or args.cols < 1 or not 0 <= args.nan < 1 or args.repeat < 1:
        ap.error("--rows, --cols and --repeat must be positive and --nan in [0, 1)")

    print(f"cpu_preprocess: float32 [{args.rows}, {args.cols}], {args.nan:.0%} NaN, median of {args.repeat}")
    ceilings = cpu_ceilings(quick=args.rows * args.cols < 1 << 20, repeat=args.repeat)
    res = run_cpu(args.rows, args.cols, args.nan, args.repeat, backend=args.backend, impls=args.impl, log=print)
    annotate(res["rows"], ceilings)
    sk = {r["op"]: r["ms"] for r in res["rows"] if r["impl"] == "sklearn"}
    for r in res["rows"]:
        if r["op"] in sk:
            r["speedup_vs_sklearn"] = round(sk[r["op"]] / r["ms"], 3)
    out = args.out or default_out(args.rows, args.cols)
    notes = res["notes"]
    if res["skipped"]:
        notes += " Skipped: " + "; ".join(f"{k}: {v}" for k, v in res["skipped"].items()) + "."
    doc = write_results(out, "cpu_preprocess", res["rows"], ceilings=ceilings, notes=notes)
    doc.update(checks=res["checks"], skipped=res["skipped"], threads=res["threads"], fused_ok=res["fused_ok"],
               tol=res["tol"], params={"rows": args.rows, "cols": args.cols, "nan": args.nan, "repeat": args.repeat,
                                       "backend": args.backend})
    # write_results wrote the core document; rewrite it with the checks included
    import json  # noqa: PLC0415

    with open(out, "w") as f:
        json.dump(jsonable(doc), f, indent=1)
    print(format_table(res["rows"], [("op", "op"), ("impl", "impl"), ("ms", "ms"), ("gbps", "GB/s"),
                                     ("frac_copy", "of copy"), ("speedup_vs_sklearn", "x sklearn"),
                                     ("max_rel_diff_vs_sklearn", "diff vs sklearn"),
                                     ("max_rel_diff_vs_float64", "diff vs f64")]))
    print(f"wrote {out}")
    for k, v in res["checks"].items():
        if k.startswith("sklearn_") or k.startswith("fused_formula"):
            print(f"check {k}: {v:.3g}" if v is not None else f"check {k}: n/a")
    if "kernelflow_fused_vs_float64" in res["checks"] and not res["fused_ok"]:
        print(f"FAIL: kernelflow fused differs from the float64 pipeline by "
              f"{res['checks']['kernelflow_fused_vs_float64']:.3g} "
              f"(> {res['tol']:g})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
