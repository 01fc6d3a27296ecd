"""Run suites the same way every time: threads set, ceilings measured before each suite, a progress bar
(tqdm, on stderr), every row annotated with the fraction of the ceilings and its speedup over
each peer measured in the same group (same suite, op, shape and device)."""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import Any, Iterable

import torch

from kernelflow.bench.suites import SUITES, BenchConfig, suite
from kernelflow.bench.timing import load_average, machine_info

SCHEMA = 1


def set_threads(n: int | None) -> int:
    """torch (and its OpenMP pool, shared by kernelflow's kernels) and numba use n threads."""
    from kernelflow.bench.peers.numba_kernels import set_threads as numba_threads  # noqa: PLC0415

    if n is not None:
        if n < 1:
            raise ValueError(f"threads must be >= 1, got {n}")
        torch.set_num_threads(n)
        numba_threads(n)
    return torch.get_num_threads()


def _group(r: dict) -> tuple:
    return (r.get("suite"), r.get("op"), tuple(r.get("shape") or ()), r.get("device", "cpu"), r.get("out_dtype"))


def annotate(rows: list[dict], ceilings: dict) -> None:
    """Add frac_copy / frac_fp32_matmul (where a suite did not measure its own) and, on kernelflow
    rows, speedup_vs_<peer> for every peer in the group plus best_peer / speedup_vs_best_peer."""
    copy, mm = ceilings.get("copy_gbps"), ceilings.get("fp32_matmul_gflops")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("device", "cpu") == "cpu":
            if "gbps" in r and copy:
                r.setdefault("frac_copy", round(r["gbps"] / copy, 4))
            if "gops" in r and mm:
                r.setdefault("frac_fp32_matmul", round(r["gops"] / mm, 4))
        groups.setdefault(_group(r), []).append(r)
    for g in groups.values():
        peers = [p for p in g if not p["impl"].startswith("kernelflow")]
        for r in g:
            if not r["impl"].startswith("kernelflow") or not peers:
                continue
            for p in peers:
                r[f"speedup_vs_{p['impl']}"] = round(p["ms"] / r["ms"], 3) if r["ms"] > 0 else None
            best = min(peers, key=lambda p: p["ms"])
            r["best_peer"] = best["impl"]
            r["speedup_vs_best_peer"] = round(best["ms"] / r["ms"], 3) if r["ms"] > 0 else None


def run_suites(names: Iterable[str], cfg: BenchConfig, progress: bool = True) -> dict:
    """Run the named suites; returns the whole document (see ``report.write_json``)."""
    names = list(dict.fromkeys(names))
    for n in names:
        suite(n)  # unknown names fail before anything runs
    threads = set_threads(cfg.threads)
    from tqdm.auto import tqdm  # noqa: PLC0415

    bar = tqdm(total=len(names), desc="suites", unit="suite", disable=not progress, leave=False)
    machine = machine_info()  # commit and date as the run starts
    load_before = load_average()
    t0 = time.perf_counter()
    from kernelflow.bench.ceilings import cpu_ceilings  # noqa: PLC0415

    rows: list[dict] = []
    results: dict[str, dict] = {}
    failures: list[str] = []
    by_suite: dict[str, dict] = {}
    for name in names:
        bar.set_description(name)
        bar.set_postfix_str("ceilings", refresh=True)
        ts = time.perf_counter()
        # measured again before every suite: on a shared machine the load drifts over a long run
        ceilings: dict[str, Any] = cpu_ceilings(cfg.quick, cfg.repeat)
        try:
            res = suite(name).run(cfg, lambda msg: bar.set_postfix_str(msg, refresh=True))
        except Exception as e:  # one broken suite is reported; the others still run
            res = {"rows": [], "skipped": {}, "checks": {}, "notes": "",
                   "failures": [f"{name} suite raised {type(e).__name__}: {e}"],
                   "traceback": traceback.format_exc(limit=8)}
        for r in res["rows"]:
            r["suite"] = name
            r.setdefault("threads", threads)
        ceilings.update(res.get("ceilings", {}))
        annotate(res["rows"], ceilings)
        by_suite[name] = ceilings
        rows += res["rows"]
        failures += res["failures"]
        results[name] = {k: v for k, v in res.items() if k != "rows"}
        results[name]["ceilings"] = ceilings
        results[name]["seconds"] = round(time.perf_counter() - ts, 2)
        bar.update(1)
    bar.close()
    # the run's ceilings: the best of those measured before each suite
    summary_ceilings: dict[str, Any] = {"quick": bool(cfg.quick)}
    for key in ("copy_gbps", "fp32_matmul_gflops"):
        vals = [c[key] for c in by_suite.values() if c.get(key)]
        if vals:
            summary_ceilings[key] = max(vals)
            summary_ceilings[key + "_min"] = min(vals)
    machine.update(load_average_before=load_before, load_average_after=load_average(), threads=threads)
    try:
        from kernelflow.bench.codepaths import code_paths  # noqa: PLC0415

        machine["code_paths"] = code_paths()
    except Exception:
        machine["code_paths"] = {}
    from kernelflow.bench.targets import evaluate  # noqa: PLC0415

    return {"benchmark": "kernelflow_bench", "schema": SCHEMA, "suites_run": names, "machine": machine,
            "config": dataclasses.asdict(cfg), "ceilings": summary_ceilings, "suites": results, "rows": rows,
            "targets": evaluate(rows), "failures": failures, "seconds": round(time.perf_counter() - t0, 2),
            "notes": ("Peers measured in the same run on the same data, interleaved call by call, warm-up first, "
                      "median of the repeats; ceilings (copy bandwidth counting bytes read + written, fp32 matmul) "
                      "measured before each suite (suites.<name>.ceilings; each row's fractions use its suite's), "
                      "the top-level ceilings the best (and _min the worst) of those. speedup_vs_X > 1: kernelflow is "
                      "faster. load_average_* records other work on the machine.")}


__all__ = ["SUITES", "BenchConfig", "annotate", "run_suites", "set_threads"]
