"""The run's report: ``report.json`` (everything measured), PNG plots (matplotlib, Agg), a
self-contained ``report.html`` that shows them, and the terminal summary table (rich)."""

from __future__ import annotations

import html
import json
import math
import os
from typing import Any

from kernelflow.workflow.evaluate import CLASSIFICATION_METRICS, GREATER_IS_BETTER, REGRESSION_METRICS

STAGE_LABELS = {"teacher": "teacher", "student": "student (distilled)", "student_alone": "student (labels only)",
                "student_int8": "student int8 (w8a8)", "onnx": "exported graph (ONNX Runtime)",
                "tensorrt": "TensorRT engine"}
BASELINE_LABELS = {"hist_gradient_boosting": "scikit-learn HistGradientBoosting", "linear": "scikit-learn linear"}


def json_safe(v: Any) -> Any:
    """NaN / inf become None (JSON has neither); numpy scalars become Python numbers."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def metric_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def rows(report: dict) -> list[dict]:
    """One row per model (workflow stages, then baselines): label, metrics, speed, size."""
    out = []
    for k, r in report.get("results", {}).items():
        out.append({"key": k, "label": STAGE_LABELS.get(k, k), "kind": "kernelflow", **r})
    for k, r in report.get("baselines", {}).items():
        out.append({"key": k, "label": BASELINE_LABELS.get(k, k), "kind": "baseline", **r})
    return out


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _size(b: Any) -> str:
    if not isinstance(b, (int, float)):
        return "-"
    return f"{b / 1e6:.2f} MB" if b >= 1e5 else f"{b / 1e3:.1f} kB"


def summary_lines(report: dict) -> list[list[str]]:
    """The summary table as text cells: header first (the terminal table and tests use it)."""
    names = metric_names(report["task"])
    head = ["model", *names, "latency ms (b=1)", "rows/s", "params", "size", "fit s"]
    body = [head]
    for r in rows(report):
        m = r.get("metrics", {})
        thr = r.get("throughput_rows_s")
        body.append([r["label"], *(_fmt(m.get(n)) for n in names), _fmt(r.get("latency_ms"), 3),
                     "-" if thr is None else f"{thr:,.0f}", _fmt(r.get("parameters")), _size(r.get("size_bytes")),
                     _fmt(r.get("fit_s"), 1)])
    return body


def print_summary(report: dict, console) -> None:
    from rich.table import Table

    lines = summary_lines(report)
    t = Table(title=f"kernelflow run {report['name']}: {report['task']} on {report['data']['source']}",
              title_justify="left")
    for i, h in enumerate(lines[0]):
        t.add_column(h, justify="left" if i == 0 else "right")
    for line in lines[1:]:
        t.add_row(*line)
    console.print(t)
    st = Table(title="stages", title_justify="left")
    for h in ("stage", "status", "seconds", "device"):
        st.add_column(h)
    for s in report["stages"]:
        st.add_row(s["name"], s["status"], _fmt(s.get("seconds"), 2), s.get("device", "-"))
    console.print(st)
    console.print(f"status: {report['status']}; report: {os.path.join(report['run_dir'], 'report.html')}")


# ------------------------------------------------------------------------------------------ plots


def plots(report: dict, histories: dict, out_dir: str) -> dict[str, str]:
    """PNG files (name -> path relative to the run folder): learning curves, metric by stage
    against the baselines, latency and size by stage."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    made: dict[str, str] = {}

    def save(fig, name):
        rel = f"plots/{name}.png"
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, rel), dpi=110)
        plt.close(fig)
        made[name] = rel

    if histories:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for k, h in histories.items():
            ep = range(1, len(h.train_loss) + 1)
            what = " (distillation loss)" if k == "student" else ""
            axes[0].plot(ep, h.train_loss, marker="o", label=f"{STAGE_LABELS.get(k, k)} train{what}")
            if h.val_loss:
                axes[0].plot(ep, h.val_loss, marker="x", linestyle="--", label=f"{STAGE_LABELS.get(k, k)} val{what}")
            if h.val_metric:
                axes[1].plot(ep, h.val_metric, marker="o", label=STAGE_LABELS.get(k, k))
        axes[0].set(title="loss by epoch", xlabel="epoch", ylabel="loss")
        unit = " (standardized target)" if report["task"] == "regression" else ""
        axes[1].set(title=f"validation {next(iter(histories.values())).metric} by epoch{unit}", xlabel="epoch")
        for a in axes:
            a.legend(fontsize=7)
            a.grid(alpha=0.3)
        save(fig, "learning_curves")

    rs = rows(report)
    if rs:
        names = metric_names(report["task"])
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.8))
        labels = [r["label"] for r in rs]
        colors = ["#1f77b4" if r["kind"] == "kernelflow" else "#ff7f0e" for r in rs]
        for a, n in zip(axes, names):
            vals = [r.get("metrics", {}).get(n) for r in rs]
            vals = [float("nan") if v is None else v for v in vals]
            a.barh(range(len(rs)), vals, color=colors)
            a.set_yticks(range(len(rs)), labels if a is axes[0] else [""] * len(rs), fontsize=7)
            a.invert_yaxis()
            a.set_title(f"{n} ({'higher' if GREATER_IS_BETTER[n] else 'lower'} is better)", fontsize=9)
            finite = [v for v in vals if math.isfinite(v)]
            if finite and n in ("accuracy", "roc_auc", "f1", "r2"):
                lo = min(finite)
                a.set_xlim(max(0.0, lo - (max(finite) - lo) - 0.02), min(1.0, max(finite) + 0.02) if n != "r2" else None)
            a.grid(axis="x", alpha=0.3)
        save(fig, "metrics_by_stage")

        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
        lat = [r.get("latency_ms") or float("nan") for r in rs]
        thr = [r.get("throughput_rows_s") or float("nan") for r in rs]
        size = [(r.get("size_bytes") or float("nan")) / 1e3 for r in rs]
        for a, vals, title, log in ((axes[0], lat, "latency at batch 1 (ms, log scale)", True),
                                    (axes[1], [v / 1e3 for v in thr], "throughput (thousand rows/s)", False),
                                    (axes[2], size, "model size (kB, log scale)", True)):
            a.barh(range(len(rs)), vals, color=colors)
            a.set_yticks(range(len(rs)), labels if a is axes[0] else [""] * len(rs), fontsize=7)
            a.invert_yaxis()
            if log:
                a.set_xscale("log")
            a.set_title(title, fontsize=9)
            a.grid(axis="x", alpha=0.3)
        save(fig, "latency_size_by_stage")

    stages = [s for s in report["stages"] if s.get("seconds")]
    if stages:
        fig, a = plt.subplots(figsize=(7, 0.35 * len(stages) + 1.2))
        a.barh([s["name"] for s in stages], [s["seconds"] for s in stages], color="#2ca02c")
        a.invert_yaxis()
        a.set(title=f"stage wall time (s) on {report['device']}", xlabel="seconds")
        a.grid(axis="x", alpha=0.3)
        save(fig, "stage_times")
    return made


# ------------------------------------------------------------------------------------------- html


def write_html(report: dict, path: str) -> None:
    esc = html.escape
    lines = summary_lines(report)
    table = "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in lines[0]) + "</tr>"
    for line in lines[1:]:
        table += "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in line) + "</tr>"
    table += "</table>"
    st = "<table><tr><th>stage</th><th>status</th><th>seconds</th><th>device</th></tr>" + "".join(
        f"<tr><td>{esc(s['name'])}</td><td>{esc(s['status'])}</td><td>{esc(_fmt(s.get('seconds'), 2))}</td>"
        f"<td>{esc(str(s.get('device', '-')))}</td></tr>" for s in report["stages"]) + "</table>"
    imgs = "".join(f'<figure><img src="{esc(p)}" alt="{esc(n)}"><figcaption>{esc(n.replace("_", " "))}</figcaption></figure>'
                   for n, p in report.get("plots", {}).items())
    m = report["manifest"]
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>kernelflow run {esc(report['name'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}td{{text-align:right}}td:first-child{{text-align:left}}
figure{{margin:1em 0}}img{{max-width:100%;border:1px solid #eee}}code{{background:#f4f4f4}}</style></head>
<body><h1>kernelflow run: {esc(report['name'])}</h1>
<p>status <b>{esc(report['status'])}</b> &middot; task {esc(report['task'])} &middot; device {esc(report['device'])}
&middot; data {esc(report['data']['source'])} ({report['data'].get('rows', '?')} rows, sha256 <code>{esc(m['data_sha256'][:16])}</code>)
&middot; seed {m['seed']} &middot; kernelflow {esc(m['versions'].get('kernelflow', '?'))}, torch {esc(m['versions'].get('torch', '?'))}</p>
<h2>Models on the test split</h2>{table}
<h2>Plots</h2>{imgs}
<h2>Stages</h2>{st}
<p>Everything measured is in <code>report.json</code>; the config and versions in <code>manifest.json</code>.</p>
</body></html>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)


def write_json(obj: dict, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(json_safe(obj), f, indent=1, allow_nan=False)
    os.replace(tmp, path)
