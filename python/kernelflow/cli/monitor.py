"""``kernelflow monitor BUNDLE DATA [--reference R] [--json]``: drift of a table against the
training data, per column (kernelflow.monitor.DriftMonitor), read chunk by chunk."""

from __future__ import annotations

import argparse
import os

ORDER = 60


def _reference(args):
    if args.reference:
        if args.reference.endswith(".json"):
            return args.reference
        return read_table(args.reference)
    ref = os.path.join(args.bundle, "drift_reference.json")
    return ref if os.path.isfile(ref) else None


def read_table(path):
    import pandas as pd

    if path.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path)
    return pd.read_parquet(path)


def iter_chunks(path, rows: int):
    """DataFrames of at most ``rows`` rows (Parquet read batch by batch; CSV in chunks)."""
    if path.endswith((".csv", ".csv.gz")):
        import pandas as pd

        yield from pd.read_csv(path, chunksize=rows)
        return
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        yield batch.to_pandas()


def cmd_monitor(args: argparse.Namespace) -> int:
    import kernelflow.preprocessing  # noqa: F401 - registers the classes kernelflow.load rebuilds
    from kernelflow.deploy.bundle import load_bundle
    from kernelflow.monitor import DriftMonitor

    pre = load_bundle(args.bundle).preprocessor
    mon = DriftMonitor(pre, _reference(args))
    for chunk in iter_chunks(args.data, args.chunk_rows):
        mon.update(chunk)
    if args.json:
        print(mon.to_json(indent=1))
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", None, "display.width", 200, "display.float_format", "{:.4g}".format):
            print(f"{mon.state.rows} rows of {args.data} against the training data of {args.bundle}")
            print(mon.report().drop(columns=["mean", "reference_mean"]).to_string(index=False))
    return 0


def _check(args) -> str | None:
    for p in (args.data, args.reference):
        if p and not os.path.isfile(p):
            return f"{p}: no such file"
    if not os.path.isdir(args.bundle):
        return f"{args.bundle}: not a bundle folder"
    if args.chunk_rows < 1:
        return "--chunk-rows must be >= 1"
    return None


def register(sub) -> None:
    p = sub.add_parser("monitor", help="drift of a table (Parquet / CSV) against a bundle's training data")
    p.add_argument("bundle", help="bundle folder (kernelflow.deploy.save_bundle)")
    p.add_argument("data", help="the new data: .parquet or .csv")
    p.add_argument("--reference", help="training profile (.json, DriftReference.save) or the training table; "
                                       "default: the bundle's drift_reference.json, else the fitted category counts")
    p.add_argument("--chunk-rows", type=int, default=65536, help="rows read per chunk")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_monitor, check=_check)
