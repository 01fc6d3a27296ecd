"""CPU benchmark: column_stats (the fit of every scaler and of the Preprocessor) on each CPU code path
against the memory ceiling and its peers, in one run, interleaved (median of --repeat rounds).

    PYTHONPATH=python python benchmarks/bench_stats_cpu.py [--rows 4000000 --cols 32 --fit-rows 1000000]

- 4M x 32 float32 (clean, and with 5% NaN + 0.5% inf): kernelflow on the avx512 / avx2 / portable
  paths (forced with _C.set_cpu_isa) as GB/s of bytes read against the copy bandwidth (a large
  np.copyto, bytes read + written) measured in the same rounds.
- 1M x 32 float32 with 5% NaN, no inf (the fit of ``kernelflow bench``): the same paths against a
  numba-parallel kernel of the same statistics (float64 sums over row chunks, Chan merge),
  scikit-learn's StandardScaler.fit and numpy's nanmean / nanvar.
Every implementation is checked against the float64 reference before timing. 2 threads
(OMP_NUM_THREADS / NUMBA_NUM_THREADS), as on CI. Writes benchmarks/results/stats_cpu.json.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("NUMBA_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kernelflow._ext import require_ext  # noqa: E402
from kernelflow.bench.timing import record, write_results  # noqa: E402
from kernelflow.ops import column_stats, column_stats_reference  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
_C = require_ext()
_ORDER = ["portable", "avx2", "avx512"]
LEVELS = _ORDER[: _ORDER.index(_C.cpu_isa_detected()) + 1][::-1]


def cpu_description() -> dict:
    """CPU model, the ISA extensions that matter here (lscpu) and the load at the time."""
    info: dict = {"load_average": [round(v, 2) for v in os.getloadavg()]}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        flags = set(fields.get("Flags", "").split())
        info["model"] = fields.get("Model name", "").strip()
        info["isa"] = sorted(f for f in flags if f in {"avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl",
                                                      "avx512_vnni", "avx_vnni", "amx_int8"})
    except (OSError, subprocess.CalledProcessError):
        info["model"] = "unknown (no lscpu)"
    return info


def make(rows: int, cols: int, seed: int, dirty: bool, inf: bool = True) -> np.ndarray:
    g = np.random.default_rng(seed)
    x = g.standard_normal((rows, cols), dtype=np.float32) * 4 + 10
    if dirty:
        x[g.random((rows, cols)) < 0.05] = np.nan
        if inf:
            x[g.random((rows, cols)) < 0.005] = np.inf
    return x


def numba_stats():
    """The numba-parallel peer of kernelflow bench (kernelflow.bench.peers.numba_kernels): per row
    chunk, shifted float64 sums of the finite values, then Chan's merge; [3, cols] (count, mean, M2)."""
    import numba  # noqa: PLC0415

    from kernelflow.bench.peers.numba_kernels import kernels  # noqa: PLC0415

    stats, nchunks = kernels()["stats"], 4 * numba.get_num_threads()

    def run(x):
        n, mm = stats(x, nchunks)
        return np.stack([n, mm[0], mm[1]])

    return run, numba.get_num_threads()


def kf_impl(level: str):
    def run(t):
        _C.set_cpu_isa(level)
        return column_stats(t, backend="cpu")
    return run


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0))) if a.size else 0.0


def interleaved(impls: dict, inputs: dict, repeat: int) -> dict:
    """impls: name -> fn(arg); inputs: name -> list of args (alternated). Median ms per name."""
    times: dict = {k: [] for k in impls}
    for k, fn in impls.items():  # warm-up
        fn(inputs[k][0])
    for r in range(repeat):
        for k, fn in impls.items():
            a = inputs[k][r % len(inputs[k])]
            t0 = time.perf_counter()
            fn(a)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--fit-rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "stats_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    cpu = cpu_description()
    rows_out: list[dict] = []

    # ---- memory speed: 4M x 32 -----------------------------------------------------------------
    R, C = args.rows, args.cols
    nbytes = R * C * 4
    for dirty in (False, True):
        xs = [make(R, C, seed, dirty) for seed in (0, 1)]  # alternated: no run re-reads a cached result
        ts = [torch.from_numpy(x) for x in xs]
        ref = column_stats_reference(ts[0]).numpy()
        for lv in LEVELS:
            got = kf_impl(lv)(ts[0]).numpy()
            assert np.array_equal(got[[0, 1, 4, 5]], ref[[0, 1, 4, 5]]) and rel_err(got[2:4], ref[2:4]) < 1e-12, lv
        dst = np.empty_like(xs[0])
        impls = {f"kernelflow-{lv}": kf_impl(lv) for lv in LEVELS}
        impls["np.copyto (ceiling)"] = lambda x: np.copyto(dst, x)
        inputs = {k: ts for k in impls}
        inputs["np.copyto (ceiling)"] = xs
        ms = interleaved(impls, inputs, args.repeat)
        copy_gbps = 2 * nbytes / (ms["np.copyto (ceiling)"] * 1e-3) / 1e9
        label = "5% NaN + 0.5% inf" if dirty else "finite"
        for k, v in ms.items():
            r = record("column_stats", k, v, (R, C), "float32", 2 * nbytes if k.startswith("np.copyto") else nbytes,
                       ceiling_gbps=copy_gbps, data=label)
            rows_out.append(r)
            print(f"column_stats {R}x{C} {label:18s} {k:22s} {v:9.1f} ms {r['gbps']:6.2f} GB/s "
                  f"({r.get('frac_copy', 0):.0%} of copy {copy_gbps:.1f} GB/s)")
        del xs, ts, dst
    _C.set_cpu_isa("auto")

    # ---- the fit at 1M x 32 against its peers ---------------------------------------------------
    FR = args.fit_rows
    xs = [make(FR, C, seed, True, inf=False) for seed in (2, 3)]  # missing values, as in the fit of kernelflow bench
    ts = [torch.from_numpy(x) for x in xs]
    ref = column_stats_reference(ts[0]).numpy()
    nb, nthreads = numba_stats()
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    fin = [np.where(np.isfinite(x), x, np.nan) for x in xs]  # sklearn / numpy skip NaN only: give them NaN for inf
    impls = {f"kernelflow-{lv}": kf_impl(lv) for lv in LEVELS}
    impls["numba-parallel"] = nb
    impls["sklearn StandardScaler.fit"] = lambda x: StandardScaler().fit(x)
    impls["numpy nanmean+nanvar"] = lambda x: (np.nanmean(x, 0, dtype=np.float64), np.nanvar(x, 0, dtype=np.float64))
    inputs = {k: ts for k in impls}
    inputs["numba-parallel"] = xs
    inputs["sklearn StandardScaler.fit"] = fin
    inputs["numpy nanmean+nanvar"] = fin
    got = nb(xs[0])
    assert rel_err(got[1], ref[2]) < 1e-9 and rel_err(got[2], ref[3]) < 1e-9, "numba peer disagrees"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ms = interleaved(impls, inputs, args.repeat)
    peer = ms["numba-parallel"]
    _C.set_cpu_isa("auto")
    for k, v in ms.items():
        r = record("fit (column_stats)", k, v, (FR, C), "float32", FR * C * 4, speedup_vs_numba=round(peer / v, 2))
        rows_out.append(r)
        print(f"fit {FR}x{C} {k:28s} {v:9.1f} ms  x{peer / v:.2f} vs numba-parallel")

    notes = (f"2 threads (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, numba {nthreads}); interleaved rounds, "
             f"median of {args.repeat}; the machine was shared with other builds and benchmarks (load average "
             f"{cpu['load_average']} at the start), so absolute numbers are noisy and the ratios within a round are what "
             "counts. GB/s counts bytes read (copy: read + written). Each kernelflow path checked against the float64 "
             "reference (count / NaN / min / max exact, mean / M2 within 1e-12) before timing.")
    write_results(args.out, "stats_cpu", rows_out, ceilings={"copy_gbps_last_round": round(copy_gbps, 2)}, notes=notes,
                  machine={"cpu": cpu, "load_average_end": [round(v, 2) for v in os.getloadavg()]})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
