"""quantile suite: exact per-column quantiles (linear interpolation, NaN ignored) of float32
[rows, cols]: kernelflow's ``column_quantiles`` against ``numpy.nanpercentile`` (what
scikit-learn's RobustScaler and QuantileTransformer call) and the torch reference (a float64 sort
per column), two inputs alternated. Bytes: the input read once. Results must equal numpy's on the
float64 values (checked before timing)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from kernelflow.bench.codepaths import family_path
from kernelflow.bench.data import make_data
from kernelflow.bench.timing import interleaved_ms, record


def run(cfg, progress) -> dict:
    from kernelflow.ops.quantile import column_quantiles  # noqa: PLC0415

    q = list(cfg.quantiles)
    pct = [100 * v for v in q]
    xs = [make_data(cfg.rows, cfg.cols, cfg.nan, seed=s) for s in (0, 1)]
    ts = [torch.from_numpy(x) for x in xs]
    with warnings.catch_warnings():  # an all-NaN column is a RuntimeWarning in numpy
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanpercentile(xs[0].astype(np.float64), pct, axis=0)
    got = column_quantiles(ts[0], q, backend=cfg.cpu_backend).numpy()
    err = float(np.nanmax(np.abs(got - ref))) if got.size else 0.0
    failures = [] if np.array_equal(got, ref, equal_nan=True) else [
        f"column_quantiles differs from numpy.nanpercentile (float64) by up to {err:.3g}"]
    state = {"i": 0}

    def nxt():
        state["i"] ^= 1
        return state["i"]

    def nanpercentile():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanpercentile(xs[nxt()], pct, axis=0)

    fns = {"kernelflow_cpu": lambda: column_quantiles(ts[nxt()], q, backend=cfg.cpu_backend),
           "numpy_nanpercentile": nanpercentile,
           "torch_reference_sort": lambda: column_quantiles(ts[nxt()], q, backend="torch")}
    progress(f"column_quantiles [{cfg.rows}, {cfg.cols}]")
    t = interleaved_ms(fns, repeat=cfg.repeat, warmup=1)
    rows = []
    for impl, ms in t.items():
        r = record("column_quantiles", impl, ms, shape=(cfg.rows, cfg.cols), dtype="float32",
                   nbytes=cfg.rows * cfg.cols * 4, quantiles=q)
        if impl == "kernelflow_cpu":
            r["path"] = family_path("quantile")
            r["exact_vs_numpy_float64"] = not failures
        rows.append(r)
    notes = (f"q = {q}, float32 [{cfg.rows}, {cfg.cols}] with {cfg.nan:.0%} NaN, two inputs alternated; "
             f"interleaved, median of {cfg.repeat}. kernelflow equals numpy.nanpercentile on the float64 values: "
             f"{not failures}. torch_reference_sort is kernelflow's torch backend (float64 sort per column).")
    return {"rows": rows, "skipped": {}, "checks": {"max_abs_diff_vs_numpy": err}, "failures": failures,
            "notes": notes}
