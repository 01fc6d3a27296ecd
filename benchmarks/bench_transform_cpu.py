"""CPU benchmark of the fused numeric transform at every ISA level against the copy ceiling and
a numba-parallel peer, measured in one run (interleaved repeats, medians).

    PYTHONPATH=python python benchmarks/bench_transform_cpu.py --out benchmarks/results/transform_cpu.json

Part 1, streaming: ``numeric_transform`` float32 [rows, cols] -> a reused float32 ``out`` (impute,
clip, scale in float64 per element) at each ISA level (``_C.set_cpu_isa``), against the copy
bandwidth of the same arrays (``np.copyto``; bytes read + written) and a numba ``prange`` kernel
doing the same float64 formula into the same ``out``. Part 2, the preprocess workload of
``kernelflow bench`` (SimpleImputer(mean) -> StandardScaler at 1M x 32, fresh outputs): fit
(``column_stats``), transform and fit_transform of the fused path against numba-parallel, and
the fresh-output path as it was before huge pages and page-sized units (torch.empty + ``out=``).
Every kernelflow result is checked against the float64 reference (exact for float32 output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def machine() -> dict:
    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "L2 cache", "L3 cache", "Hypervisor vendor"):
                info[k.strip()] = v.strip()
            if k.strip() == "Flags":
                flags = v.split()
                info["isa_flags"] = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni")
                                     if f in flags]
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def interleave(impls: dict, repeat: int, warmup: int = 1) -> tuple[dict, dict]:
    """(name -> median ms, name -> min ms); each round runs every implementation once, in turn.
    On a shared machine the minimum is the run least disturbed by other work."""
    for _ in range(warmup):
        for fn in impls.values():
            fn()
    times = {k: [] for k in impls}
    for _ in range(repeat):
        for k, fn in impls.items():
            times[k].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}, {k: min(v) for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--prep-rows", type=int, default=1_000_000, help="rows of the preprocess workload (part 2)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nan", type=float, default=0.05)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "transform_cpu.json"))
    args = ap.parse_args(argv)
    for v in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[v] = str(args.threads)

    import numba  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from numba import njit, prange  # noqa: PLC0415

    from kernelflow import _C, ops  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    @njit(parallel=True, cache=False)
    def nb_transform_into(x, p, out):  # x [rows, cols] float32; p [6, cols] float64; float64 per element
        rows, cols = x.shape
        for i in prange(rows):
            for j in range(cols):
                v = np.float64(x[i, j])
                if v != v:
                    v = p[0, j]
                if v > p[2, j]:
                    v = p[2, j]
                if v < p[1, j]:
                    v = p[1, j]
                out[i, j] = np.float32((v - p[3, j]) * p[4, j] + p[5, j])

    from kernelflow.bench.peers.numba_kernels import kernels as numba_kernels  # noqa: PLC0415

    peer = numba_kernels()  # the peer of kernelflow bench's preprocess suite
    nb_transform = peer["transform"]  # fresh output

    def nb_stats(x):  # [3, cols] (count, mean, M2): shifted float64 chunk sums, Chan-merged
        n, mm = peer["stats"](x, 4 * numba.get_num_threads())
        return np.stack([n, mm[0], mm[1]])

    def params_from(count, mean, m2, rows):
        fill = np.where(count > 0, mean, 0.0)
        scale = np.sqrt(np.maximum(m2, 0) / max(rows, 1))
        scale = np.where(scale > 0, scale, 1.0)
        return fill, mean, 1.0 / scale

    levels = [lv for lv in ("avx512", "avx2", "portable")
              if ["portable", "avx2", "avx512"].index(lv) <= ["portable", "avx2", "avx512"].index(_C.cpu_isa_detected())]
    results: dict = {"streaming": {}, "preprocess": {}}

    # ---- part 1: streaming into a reused out ----
    R, C = args.rows, args.cols
    x = rng.standard_normal((R, C), dtype=np.float32) * 3 + 1
    x[rng.random((R, C)) < args.nan] = np.nan
    out = np.empty_like(x)
    out.fill(0)  # first touch outside the timings
    p = ops.transform_params(C, fill=0.5, lo=-4.0, hi=6.0, shift=1.0, inv_scale=1 / 3.0, offset=0.0)
    xt, ot, pt = torch.from_numpy(x), torch.from_numpy(out), torch.from_numpy(p)
    nb_transform_into(x[:64], p, out[:64])  # compile outside the timings

    def kf_at(level):
        def run():
            _C.set_cpu_isa(level)
            ops.numeric_transform(xt, pt, out=ot, backend="cpu")
        return run

    impls = {"copy (np.copyto)": lambda: np.copyto(out, x)}
    for lv in levels:
        impls[f"kernelflow {lv}"] = kf_at(lv)
    impls["numba-parallel (same formula, float64)"] = lambda: nb_transform_into(x, p, out)
    ms, ms_min = interleave(impls, args.repeat)
    _C.set_cpu_isa("auto")
    nbytes = 2 * x.nbytes
    copy_gbps = nbytes / ms["copy (np.copyto)"] / 1e6
    copy_gbps_min = nbytes / ms_min["copy (np.copyto)"] / 1e6
    ref = ops.numeric_transform_reference(xt, pt, torch.float32).numpy()
    checks = {}
    for lv in levels:
        _C.set_cpu_isa(lv)
        got = ops.numeric_transform(xt, pt, out=ot, backend="cpu").numpy()
        checks[lv] = bool(np.array_equal(got, ref, equal_nan=True))
    _C.set_cpu_isa("auto")
    for k, v in ms.items():
        g, gm = nbytes / v / 1e6, nbytes / ms_min[k] / 1e6
        results["streaming"][k] = {"ms": round(v, 2), "gbps": round(g, 2), "fraction_of_copy": round(g / copy_gbps, 3),
                                   "min_ms": round(ms_min[k], 2), "fraction_of_copy_min": round(gm / copy_gbps_min, 3)}
    results["streaming_checks_equal_float64_reference"] = checks
    del x, out, xt, ot, ref

    # ---- part 2: the preprocess workload (fresh outputs, like kernelflow bench) ----
    R2 = args.prep_rows
    x2 = rng.standard_normal((R2, C), dtype=np.float32) * (np.arange(C, dtype=np.float32) + 1) + 10
    x2[rng.random((R2, C)) < args.nan] = np.nan
    t2 = torch.from_numpy(x2)
    nb_stats(x2[:64])
    nb_transform(x2[:64], np.zeros(C, np.float32), np.zeros(C, np.float32), np.ones(C, np.float32))

    def kf_fit():
        s = ops.column_stats(t2, backend="cpu").numpy()
        f, m, inv = params_from(s[0], s[2], s[3], R2)
        return torch.from_numpy(ops.transform_params(C, fill=f, shift=m, inv_scale=inv))

    kf_state = kf_fit()

    def nb_fit():
        s = nb_stats(x2)
        f, m, inv = params_from(s[0], s[1], s[2], R2)
        return f.astype(np.float32), m.astype(np.float32), inv.astype(np.float32)

    nb_state = nb_fit()
    impls2 = {
        "fit kernelflow": kf_fit,
        "fit numba-parallel": nb_fit,
        "transform kernelflow": lambda: ops.numeric_transform(t2, kf_state, "float32", backend="cpu"),
        "transform numba-parallel": lambda: nb_transform(x2, *nb_state),
        "fit_transform kernelflow": lambda: ops.numeric_transform(t2, kf_fit(), "float32", backend="cpu"),
        "fit_transform numba-parallel": lambda: nb_transform(x2, *nb_fit()),
        # the fresh-output path as it was: torch.empty (4 KB pages) written through the reused-out
        # kernel (units of 128 KB, so both threads fault the same pages)
        "transform kernelflow (before: torch.empty + out=)": lambda: ops.numeric_transform(
            t2, kf_state, backend="cpu", out=torch.empty((R2, C))),
        "fit_transform kernelflow (before: torch.empty + out=)": lambda: ops.numeric_transform(
            t2, kf_fit(), backend="cpu", out=torch.empty((R2, C))),
    }
    ms2, ms2_min = interleave(impls2, args.repeat)
    for k, v in ms2.items():
        results["preprocess"][k] = {"ms": round(v, 2), "min_ms": round(ms2_min[k], 2)}
    for op in ("transform", "fit_transform"):
        b = f"{op} kernelflow (before: torch.empty + out=)"
        results["preprocess"][f"{op} speedup vs before"] = round(ms2[b] / ms2[f"{op} kernelflow"], 2)
    for op in ("fit", "transform", "fit_transform"):
        results["preprocess"][f"{op} speedup vs numba"] = round(ms2[f"{op} numba-parallel"] / ms2[f"{op} kernelflow"], 2)
        results["preprocess"][f"{op} speedup vs numba (min)"] = round(
            ms2_min[f"{op} numba-parallel"] / ms2_min[f"{op} kernelflow"], 2)

    doc = {
        "benchmark": "transform_cpu",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": machine(),
        "loadavg_end": os.getloadavg(),
        "note": "2-core VM shared with other builds and benchmarks at the time (see loadavg); interleaved "
                "repeats, medians (and minima: the least disturbed run). GB/s counts bytes read + written; the copy ceiling is np.copyto of the same arrays.",
        "threads": args.threads,
        "numba_threads": numba.get_num_threads(),
        "params": {"rows": R, "cols": C, "prep_rows": R2, "nan": args.nan, "repeat": args.repeat},
        "copy_gbps": round(copy_gbps, 2),
        "copy_gbps_min_time": round(copy_gbps_min, 2),
        "nt_threshold_bytes": getattr(_C, "xform_nt_threshold", lambda: None)(),
        **results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    print(json.dumps(doc, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
