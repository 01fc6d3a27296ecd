"""CPU micro-benchmark: kernelflow's exact column quantiles (C++ nth_element selection) against
numpy.nanpercentile (what scikit-learn's RobustScaler calls) and the torch sort reference, on
1,000,000 x 24 float32 with 5% NaN. Writes benchmarks/results/quantile_cpu.json.

    PYTHONPATH=python python benchmarks/bench_quantile_cpu.py
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from kernelflow.bench.timing import cpu_time_ms, record, write_results
from kernelflow.ops.quantile import column_quantiles

ROWS, COLS = 1_000_000, 24
Q = [0.25, 0.5, 0.75]


def main() -> None:
    rng = np.random.default_rng(0)
    xs = []
    for _ in range(2):  # two inputs, alternated, so no run re-reads a cached result
        x = rng.standard_normal((ROWS, COLS), dtype=np.float32)
        x[rng.random((ROWS, COLS)) < 0.05] = np.nan
        xs.append(x)
    ts = [torch.from_numpy(x) for x in xs]
    shape, nbytes = (ROWS, COLS), ROWS * COLS * 4
    # correctness before timing: the same numbers as numpy on the float64 values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanpercentile(xs[0].astype(np.float64), [100 * q for q in Q], axis=0)
    got = column_quantiles(ts[0], Q, backend="cpu").numpy()
    assert np.array_equal(got, ref), float(np.abs(got - ref).max())

    rows = []
    kf_ms = cpu_time_ms(lambda t: column_quantiles(t, Q, backend="cpu"), [(t,) for t in ts], warmup=1, repeat=5)
    rows.append(record("column_quantiles", "kernelflow-cpu", kf_ms, shape, "float32", nbytes, threads=torch.get_num_threads()))
    np_ms = cpu_time_ms(lambda x: np.nanpercentile(x, [100 * q for q in Q], axis=0), [(x,) for x in xs], warmup=1, repeat=3)
    rows.append(record("column_quantiles", "numpy.nanpercentile", np_ms, shape, "float32", nbytes))
    ref_ms = cpu_time_ms(lambda t: column_quantiles(t, Q, backend="torch"), [(t,) for t in ts], warmup=1, repeat=3)
    rows.append(record("column_quantiles", "torch-reference (float64 sort)", ref_ms, shape, "float32", nbytes))
    for r in rows:
        r["speedup_vs_numpy"] = round(np_ms / r["ms"], 2)
        print(f'{r["impl"]:32s} {r["ms"]:10.2f} ms  x{r["speedup_vs_numpy"]} vs numpy')
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "quantile_cpu.json")
    write_results(out, "quantile_cpu", rows, notes=(
        f"q={Q}, 5% NaN, standard normal float32; kernelflow matches numpy.nanpercentile on the float64 values "
        f"bit for bit (checked before timing); OMP threads={torch.get_num_threads()}, os.cpu_count()={os.cpu_count()}"))


if __name__ == "__main__":
    main()
