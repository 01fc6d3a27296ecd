"""CPU benchmark: the sparse and weighted statistics paths against scikit-learn, same run, same data.

    PYTHONPATH=python python benchmarks/bench_sparse.py --rows 1000000 --cols 1000 --density 0.01

CSR float64 [rows, cols] at --density (1% NaN among the stored values): StandardScaler(with_mean=False)
fit (unweighted and with sample_weight) and transform, MaxAbsScaler fit, RobustScaler(with_centering=False)
fit (quantiles with implicit zeros, CSC), SimpleImputer(mean) fit; and a dense float64 [rows, 32]
weighted StandardScaler fit. Each row: median time of --repeat runs, achieved GB/s (stored values and
indices read once) against a host copy bandwidth measured in the same run, and the speedup over
scikit-learn; results are checked against scikit-learn's (max relative difference). Writes JSON to
benchmarks/results/sparse_cpu.json unless --out is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
from sklearn import impute as ski
from sklearn import preprocessing as skp

from kernelflow import preprocessing as kfp
from kernelflow.bench.timing import cpu_summary, cpu_time_ms, record, write_results

HERE = os.path.dirname(os.path.abspath(__file__))


def host_copy_gbps(nbytes: int = 1 << 30) -> float:
    """Bytes read + written per second by a large numpy copy (the memory ceiling here)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    ms = cpu_time_ms(lambda: np.copyto(dst, src), warmup=1, repeat=5)
    return 2 * src.nbytes / (ms * 1e-3) / 1e9


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    m = np.isfinite(b)
    return float(np.max(np.abs(a[m] - b[m]) / np.maximum(np.abs(b[m]), 1e-300))) if m.any() else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=1000)
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "sparse_cpu.json"))
    args = ap.parse_args(argv)
    if args.rows < 1 or args.cols < 1 or not 0 < args.density <= 1 or args.repeat < 1:
        ap.error("--rows, --cols, --repeat must be positive and --density in (0, 1]")

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    X = sp.random_array((args.rows, args.cols), density=args.density, format="csr", dtype=np.float64, rng=rng)
    X.data = rng.normal(3.0, 2.0, X.data.size)
    X.data[rng.random(X.data.size) < 0.01] = np.nan
    Xc = X.tocsc()
    w = rng.uniform(0.1, 2.0, args.rows)
    print(f"CSR {X.shape}, nnz {X.nnz:,} (built in {time.perf_counter() - t0:.1f}s)")
    ceiling = host_copy_gbps()
    print(f"host copy ceiling: {ceiling:.1f} GB/s")
    nbytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes  # the stored matrix, read once
    rows, checks = [], {}
    shape = list(X.shape)

    def bench(op, ours, theirs, compare, nb=nbytes, shp=shape):
        ms_k = cpu_time_ms(ours, repeat=args.repeat)
        ms_s = cpu_time_ms(theirs, repeat=args.repeat)
        a, b = ours(), theirs()
        checks[op] = compare(a, b)
        rows.append(record(op, "kernelflow", ms_k, shp, "float64", nbytes=nb, ceiling_gbps=ceiling,
                           speedup_vs_sklearn=round(ms_s / ms_k, 2)))
        rows.append(record(op, "sklearn", ms_s, shp, "float64", nbytes=nb, ceiling_gbps=ceiling))
        print(f"{op:42s} kernelflow {ms_k:9.1f} ms  sklearn {ms_s:9.1f} ms  x{ms_s / ms_k:6.2f}  "
              f"{rows[-2]['gbps']:6.2f} GB/s  max rel diff {checks[op]:.2e}")

    attr = lambda name: (lambda a, b: rel(getattr(a, name), getattr(b, name)))  # noqa: E731
    bench("StandardScaler(with_mean=False).fit CSR", lambda: kfp.StandardScaler(with_mean=False).fit(X),
          lambda: skp.StandardScaler(with_mean=False).fit(X), attr("var_"))
    bench("StandardScaler(with_mean=False).fit CSR sample_weight",
          lambda: kfp.StandardScaler(with_mean=False).fit(X, sample_weight=w),
          lambda: skp.StandardScaler(with_mean=False).fit(X, sample_weight=w), attr("var_"))
    ko, so = kfp.StandardScaler(with_mean=False).fit(X), skp.StandardScaler(with_mean=False).fit(X)
    bench("StandardScaler.transform CSR", lambda: ko.transform(X), lambda: so.transform(X),
          lambda a, b: rel(a.data, b.data), nb=nbytes + X.data.nbytes)
    bench("MaxAbsScaler.fit CSR", lambda: kfp.MaxAbsScaler().fit(X), lambda: skp.MaxAbsScaler().fit(X), attr("max_abs_"))
    bench("RobustScaler(with_centering=False).fit CSC", lambda: kfp.RobustScaler(with_centering=False).fit(Xc),
          lambda: skp.RobustScaler(with_centering=False).fit(Xc), attr("scale_"))
    bench("SimpleImputer(mean).fit CSR->CSC", lambda: kfp.SimpleImputer().fit(X), lambda: ski.SimpleImputer().fit(X),
          attr("statistics_"))
    D = rng.normal(5.0, 3.0, (args.rows, 32))
    bench("StandardScaler.fit dense sample_weight", lambda: kfp.StandardScaler().fit(D, sample_weight=w),
          lambda: skp.StandardScaler().fit(D, sample_weight=w), attr("var_"), nb=D.nbytes + w.nbytes, shp=list(D.shape))

    notes = (f"CPU: {cpu_summary()}. 2 cores shared with other work: ratios move by tens of percent between runs. "
             "SimpleImputer converts CSR to CSC inside scikit-learn's validation (both sides).")
    doc = write_results(args.out, "sparse_cpu", rows, ceilings={"host_copy_gbps": round(ceiling, 2)}, notes=notes)
    doc["checks_max_rel_diff"] = checks
    doc["params"] = vars(args)
    import json

    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    bad = {k: v for k, v in checks.items() if v > 1e-9}
    if bad:
        print(f"results differ from scikit-learn: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
