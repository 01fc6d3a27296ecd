"""CPU benchmark: kernelflow's exact column quantiles (radix selection over the float keys) on each
CPU code path against numpy.nanpercentile (what scikit-learn's RobustScaler calls) and the torch
sort reference, on 1,000,000 x 32 float32 with 5% NaN, in one run, interleaved (median of
--repeat rounds), 2 threads. Writes benchmarks/results/quantile_cpu.json.

    PYTHONPATH=python python benchmarks/bench_quantile_cpu.py
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_stats_cpu import LEVELS, cpu_description, interleaved  # noqa: E402
from kernelflow._ext import require_ext  # noqa: E402
from kernelflow.bench.timing import record, write_results  # noqa: E402
from kernelflow.ops.quantile import column_quantiles  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
_C = require_ext()
Q = [0.25, 0.5, 0.75]


def kf_impl(level: str):
    def run(t):
        _C.set_cpu_isa(level)
        return column_quantiles(t, Q, backend="cpu")
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "quantile_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    cpu = cpu_description()
    rng = np.random.default_rng(0)
    xs = []
    for _ in range(2):  # two inputs, alternated, so no run re-reads a cached result
        x = rng.standard_normal((args.rows, args.cols), dtype=np.float32)
        x[rng.random(x.shape) < 0.05] = np.nan
        xs.append(x)
    ts = [torch.from_numpy(x) for x in xs]
    shape, nbytes = (args.rows, args.cols), args.rows * args.cols * 4
    # correctness before timing: the same numbers as numpy on the float64 values, on every path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanquantile(xs[0].astype(np.float64), Q, axis=0)
    for lv in LEVELS:
        got = kf_impl(lv)(ts[0]).numpy()
        assert np.array_equal(got, ref), (lv, float(np.abs(got - ref).max()))

    impls = {f"kernelflow-{lv}": kf_impl(lv) for lv in LEVELS}
    impls["numpy.nanpercentile"] = lambda x: np.nanpercentile(x, [100 * q for q in Q], axis=0)
    inputs = {k: ts for k in impls}
    inputs["numpy.nanpercentile"] = xs
    ms = interleaved(impls, inputs, args.repeat)
    ms["torch-reference (float64 sort)"] = interleaved({"r": lambda t: column_quantiles(t, Q, backend="torch")},
                                                       {"r": ts}, 1)["r"]
    _C.set_cpu_isa("auto")
    np_ms = ms["numpy.nanpercentile"]
    rows = []
    for k, v in ms.items():
        r = record("column_quantiles", k, v, shape, "float32", nbytes, speedup_vs_numpy=round(np_ms / v, 2),
                   threads=int(os.environ["OMP_NUM_THREADS"]) if k.startswith("kernelflow") else 1)
        rows.append(r)
        print(f'{k:32s} {v:10.2f} ms  x{r["speedup_vs_numpy"]} vs numpy')
    notes = (f"q={Q}, 5% NaN, standard normal float32; kernelflow matches numpy.nanquantile on the float64 values "
             f"bit for bit on every path (checked before timing); OMP threads={os.environ['OMP_NUM_THREADS']}; "
             f"interleaved rounds, median of {args.repeat}; the machine was shared with other builds and benchmarks "
             f"(load average {cpu['load_average']} at the start): ratios within a round are what counts.")
    write_results(args.out, "quantile_cpu", rows, notes=notes,
                  machine={"cpu": cpu, "load_average_end": [round(v, 2) for v in os.getloadavg()]})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
