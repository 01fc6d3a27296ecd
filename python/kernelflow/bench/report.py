"""What a run looks like afterwards: text tables with one number format per quantity, the JSON
document (never pickle) and PNG plots (matplotlib, Agg: no display needed)."""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable

import numpy as np

# one format per quantity, used by every table
FORMATS: dict[str, Callable[[Any], str]] = {
    "ms": lambda v: f"{v:.4g}",
    "gbps": lambda v: f"{v:.1f}",
    "gops": lambda v: f"{v:.1f}",
    "frac": lambda v: f"{v:.0%}",
    "speedup": lambda v: f"{v:.2f}x",
    "diff": lambda v: f"{v:.1e}",
}


def _kind(key: str) -> str | None:
    if key in ("ms", "gbps", "gops"):
        return key
    if key.startswith("frac"):
        return "frac"
    if key.startswith("speedup"):
        return "speedup"
    if key.startswith("max_rel_diff") or key.startswith("max_abs"):
        return "diff"
    return None


def cell(key: str, v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    kind = _kind(key)
    if kind and isinstance(v, (int, float)) and math.isfinite(v):
        return FORMATS[kind](v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_table(rows: list[dict], columns: list[tuple[str, str]] | None = None) -> str:
    """Plain-text table of benchmark rows; columns = [(key, header)], those no row has dropped.
    The first two columns are left-aligned (names), the rest right-aligned (numbers)."""
    columns = columns or [("op", "op"), ("impl", "impl"), ("ms", "ms"), ("gbps", "GB/s"),
                          ("speedup_vs_sklearn", "x sklearn"), ("frac_copy", "of copy")]
    columns = [(k, h) for k, h in columns if any(k in r for r in rows)]
    table = [[h for _, h in columns]] + [[cell(k, r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


SUITE_COLUMNS = [("op", "op"), ("impl", "impl"), ("shape", "shape"), ("ms", "ms"), ("gbps", "GB/s"),
                 ("gops", "GOP/s"), ("frac_copy", "of copy"), ("frac_fp32_matmul", "of fp32 mm"),
                 ("speedup_vs_best_peer", "x best peer"), ("best_peer", "best peer"),
                 ("max_rel_diff_vs_float64", "diff vs f64"), ("path", "path")]


def summary(doc: dict) -> str:
    """Every suite's table, its skipped peers and failures, then the ceilings and the machine."""
    out = []
    for name in doc["suites_run"]:
        res = doc["suites"][name]
        rows = [r for r in doc["rows"] if r["suite"] == name]
        c = res.get("ceilings", {})
        out.append(f"\n{name} ({res['seconds']} s; ceilings before it: copy {cell('gbps', c.get('copy_gbps'))} GB/s, "
                   f"fp32 matmul {cell('gops', c.get('fp32_matmul_gflops'))} GFLOP/s)")
        if rows:
            out.append(format_table(rows, SUITE_COLUMNS))
        for k, v in res.get("skipped", {}).items():
            out.append(f"  skipped {k}: {v}")
        for f in res.get("failures", []):
            out.append(f"  FAIL: {f}")
    if doc.get("targets"):
        out.append("\ntargets (this machine, this run; not checked by tests)")
        trows = [dict(t, value=cell(t["key"], t["value"]), threshold=cell(t["key"], t["threshold"]),
                      met={True: "yes", False: "no", None: "n/a"}[t["met"]]) for t in doc["targets"]]
        out.append(format_table(trows, [("target", "target"), ("shape", "shape"), ("value", "value"),
                                        ("threshold", "needs"), ("met", "met")]))
    c, m = doc["ceilings"], doc["machine"]
    out.append(f"\nceilings (best / worst before a suite): copy {cell('gbps', c.get('copy_gbps'))} / "
               f"{cell('gbps', c.get('copy_gbps_min'))} GB/s (read + write), fp32 matmul "
               f"{cell('gops', c.get('fp32_matmul_gflops'))} / {cell('gops', c.get('fp32_matmul_gflops_min'))} GFLOP/s"
               + (" (quick sizes: cache, not memory)" if c.get("quick") else ""))
    out.append(f"machine: {m.get('cpu_model')} [{', '.join(m.get('isa_flags', []))}], {m.get('cpu_count')} cores, "
               f"{m.get('threads')} threads, kernelflow CPU level {m.get('kernelflow_cpu_isa')}, load "
               f"{m.get('load_average_before')} -> {m.get('load_average_after')}")
    return "\n".join(out)


def jsonable(v: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays unwrapped, non-finite floats as the strings
    "inf" / "-inf" / "nan" (strict JSON has no such numbers)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def write_json(doc: dict, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(jsonable(doc), f, indent=1, allow_nan=False)
        f.write("\n")
    return path


def plot(doc: dict, directory: str) -> list[str]:
    """One PNG per suite, ``bench_<suite>.png``: for each (op, shape) a group of horizontal bars,
    the time of every implementation on a log axis (kernelflow in one colour, peers in another),
    each labelled with its speedup of kernelflow over it. Returns the paths written."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as e:
        raise RuntimeError("--plot needs matplotlib: pip install matplotlib (or kernelflow[bench])") from e
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name in doc["suites_run"]:
        rows = [r for r in doc["rows"] if r["suite"] == name and r.get("ms", 0) > 0]
        if not rows:
            continue
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            groups.setdefault((r["op"], "x".join(map(str, r.get("shape", []))), r.get("device", "cpu")), []).append(r)
        labels, values, colours, notes = [], [], [], []
        for (op, shape, dev), g in groups.items():
            kf = [r for r in g if r["impl"].startswith("kernelflow")]
            for r in sorted(g, key=lambda r: (not r["impl"].startswith("kernelflow"), r["impl"])):
                labels.append(f"{op} {shape}{' ' + dev if dev != 'cpu' else ''} | {r['impl']}")
                values.append(r["ms"])
                is_kf = r["impl"].startswith("kernelflow")
                colours.append("tab:orange" if is_kf else "tab:blue")
                notes.append("" if is_kf or not kf else
                             f"kernelflow {r['ms'] / min(k['ms'] for k in kf):.2f}x")
            labels.append("")
            values.append(float("nan"))
            colours.append("white")
            notes.append("")
        labels, values, colours, notes = labels[:-1], values[:-1], colours[:-1], notes[:-1]
        fig, ax = plt.subplots(figsize=(10, 0.32 * len(labels) + 1.6))
        y = np.arange(len(labels))
        ax.barh(y, np.nan_to_num(values, nan=0.0), color=colours)
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("median time, ms (log scale)")
        for yi, v, n in zip(y, values, notes):
            if n and math.isfinite(v):
                ax.text(v, yi, " " + n, va="center", fontsize=6)
        m = doc["machine"]
        ax.set_title(f"kernelflow bench: {name}  ({m.get('cpu_model')}, {m.get('threads')} threads, "
                     f"commit {m.get('commit')})", fontsize=8)
        fig.tight_layout()
        p = os.path.join(directory, f"bench_{name}.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths
