"""``Workflow``: run the stages, time each, write the run folder and return a ``WorkflowResult``.

The run folder ``<output_dir>/<YYYYmmdd-HHMMSS>-<name>/`` holds ``manifest.json`` (config, seed,
versions, device, data SHA-256), ``config.toml``, ``report.json``, ``report.html`` with
``plots/*.png``, and the bundle / model repository when those stages run. While the run is in
progress (and forever if it is interrupted or fails) the folder holds a file ``INCOMPLETE`` and
``report.json`` says ``"status": "running"`` / ``"interrupted"`` / ``"failed"``; only a finished
run removes the marker and writes ``"status": "complete"``.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from kernelflow.workflow import config as C
from kernelflow.workflow import report as R
from kernelflow.workflow import stages as S

INCOMPLETE = "INCOMPLETE"
_OWN_BARS = ("teacher", "student", "baselines", "tune")  # stages that draw a bar per epoch / model


@dataclass
class WorkflowResult:
    """What ``Workflow.run`` returns: the run folder and the report (as written to report.json)."""

    run_dir: str
    report: dict = field(repr=False)
    server: Any = field(default=None, repr=False)  # the running TritonServer after the serve stage (call .stop())

    @property
    def status(self) -> str:
        return self.report["status"]

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Test-split metrics by model (workflow stages and baselines)."""
        out = {k: v["metrics"] for k, v in self.report.get("results", {}).items()}
        out.update({f"baseline:{k}": v["metrics"] for k, v in self.report.get("baselines", {}).items()})
        return out

    def stage(self, name: str) -> dict:
        for s in self.report["stages"]:
            if s["name"] == name:
                return s
        raise KeyError(f"no stage {name!r}; stages: {[s['name'] for s in self.report['stages']]}")


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise C.ConfigError(f"config: device = {name!r} but no CUDA device is usable here (use 'auto' or 'cpu')")
    return dev


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    import kernelflow

    out = {"kernelflow": kernelflow.__version__, "python": platform.python_version(), "torch": torch.__version__}
    for name in ("numpy", "pandas", "pyarrow", "scikit-learn", "optuna", "onnx", "onnxruntime", "tensorrt"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _machine(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    out = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "platform": platform.platform(), "device": str(device)}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


class Workflow:
    """The whole workflow on one config: ``Workflow(config).run()`` or ``Workflow.from_toml(path).run()``.

    config: a :class:`WorkflowConfig`, a nested dict (as TOML would give) or None (the embedded
    default dataset with default settings). ``progress``: per-stage progress bars on stderr;
    ``console``: a rich Console to draw them on. ``serve`` overrides ``[serve] serve``.
    """

    def __init__(self, config: C.WorkflowConfig | dict | None = None, *, progress: bool = True,
                 console: Any = None, serve: bool | None = None) -> None:
        if config is None:
            config = C.WorkflowConfig()
        if isinstance(config, dict):
            config = C.from_dict(config)
        if not isinstance(config, C.WorkflowConfig):
            raise TypeError(f"config must be a WorkflowConfig, a dict or None, got {type(config).__name__}")
        self.config = C.check(config)
        if serve is not None:
            self.config.serve.serve = bool(serve)
        self.progress = progress
        self.console = console

    @classmethod
    def from_toml(cls, path: str | os.PathLike, **kwargs: Any) -> "Workflow":
        return cls(C.load_config(path), **kwargs)

    # --------------------------------------------------------------------------------- run
    def run(self) -> WorkflowResult:
        """Run every stage; raises ConfigError (before creating anything) for config and data errors."""
        cfg = copy.deepcopy(self.config)  # tuning updates the run's copy, never the caller's
        device = _resolve_device(cfg.device)
        limits = contextlib.nullcontext()
        if cfg.threads:  # torch, OpenMP (kernelflow's kernels, scikit-learn) and BLAS alike
            from threadpoolctl import threadpool_limits

            torch.set_num_threads(cfg.threads)
            limits = threadpool_limits(cfg.threads)
        with limits:
            return self._run(cfg, device)

    def _run(self, cfg: C.WorkflowConfig, device: torch.device) -> WorkflowResult:
        from kernelflow.workflow import data as D

        t_start = time.perf_counter()
        stages: list[dict] = []
        t0 = time.perf_counter()
        table = D.load(cfg)  # every data error is raised here, before the run folder exists
        stages.append({"name": "load", "status": "ok", "seconds": time.perf_counter() - t0, "device": "cpu",
                       "detail": {"source": table.source, **table.info, "rows_without_target": table.rows_dropped}})
        run_dir = self._make_run_dir(cfg)
        ctx = S.Ctx(cfg=cfg, device=device, run_dir=run_dir, table=table)
        started = _dt.datetime.now(_dt.timezone.utc)
        manifest = {"config": cfg.to_dict(), "seed": cfg.seed, "versions": _versions(), "machine": _machine(device),
                    "data_source": table.source, "data_sha256": table.sha256, "started_utc": started.isoformat(),
                    "command": " ".join(sys.argv)}
        R.write_json(manifest, os.path.join(run_dir, "manifest.json"))
        with open(os.path.join(run_dir, "config.toml"), "w", encoding="utf-8") as f:
            f.write(C.config_to_toml(cfg))
        report = {"name": cfg.name, "status": "running", "task": table.task, "device": str(device),
                  "run_dir": run_dir, "target": table.target, "classes": table.classes,
                  "data": {"source": table.source, **table.info, "rows_without_target": table.rows_dropped},
                  "manifest": manifest, "stages": stages, "results": {}, "baselines": {}}
        R.write_json(report, os.path.join(run_dir, "report.json"))

        with self._progress() as bar:
            ctx.progress = bar
            try:
                plan: list[tuple[str, Callable[[S.Ctx], dict], bool]] = [
                    ("split", S.stage_split, True),
                    ("preprocess", S.stage_preprocess, True),
                    ("tune", _tune, cfg.tune.enabled),
                    ("teacher", S.stage_teacher, True),
                    ("student", S.stage_student, cfg.student.enabled),
                    ("quantize", S.stage_quantize, cfg.student.enabled and cfg.quantize.enabled),
                    ("evaluate", S.stage_evaluate, True),
                    ("baselines", S.stage_baselines, bool(cfg.baselines.models)),
                    ("export", _export, cfg.export.enabled),
                    ("repository", _repository, cfg.export.enabled and cfg.serve.repository),
                    ("serve", _serve, cfg.serve.serve),
                ]
                for name, fn, enabled in plan:
                    if not enabled:
                        stages.append({"name": name, "status": "off", "seconds": 0.0})
                        continue
                    rec = {"name": name, "status": "running", "device": str(device)}
                    stages.append(rec)
                    t0 = time.perf_counter()
                    step = bar(name, 1) if bar is not None and name not in _OWN_BARS else None
                    try:
                        rec["detail"] = fn(ctx)
                        rec["status"] = "ok"
                        if step is not None:
                            step(1)
                    except S.Skipped as e:
                        rec["status"] = f"skipped: {e}"
                    rec["seconds"] = time.perf_counter() - t0
                    if bar is not None:
                        bar.stop()
                    if name == "export" and rec["status"] != "ok":
                        ctx.extra["export_skipped"] = rec["status"]
                    report["results"], report["baselines"] = ctx.results, ctx.baselines
                    R.write_json(report, os.path.join(run_dir, "report.json"))
                report["status"] = "complete"
            except KeyboardInterrupt:
                if ctx.extra.get("server") is not None:
                    ctx.extra["server"].stop()
                report["status"] = "interrupted"
                self._finish(report, ctx, stages, t_start, complete=False)
                raise
            except BaseException as e:
                if ctx.extra.get("server") is not None:
                    ctx.extra["server"].stop()
                report["status"] = "failed"
                report["error"] = f"{type(e).__name__}: {e}"
                self._finish(report, ctx, stages, t_start, complete=False)
                raise
        self._finish(report, ctx, stages, t_start, complete=True)
        return WorkflowResult(run_dir, R.json_safe(report), server=ctx.extra.get("server"))

    def _finish(self, report: dict, ctx: S.Ctx, stages: list[dict], t_start: float, complete: bool) -> None:
        for s in stages:
            if s.get("status") == "running":
                s["status"] = report["status"]
        report["results"], report["baselines"] = ctx.results, ctx.baselines
        report["extra"] = {k: v for k, v in ctx.extra.items() if k not in ("server", "onnx_runner")}
        report["histories"] = {k: h.to_dict() for k, h in ctx.histories.items()}
        report["total_seconds"] = time.perf_counter() - t_start
        report["finished_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
        run_dir = report["run_dir"]
        if complete:
            report["plots"] = R.plots(report, ctx.histories, run_dir)
            R.write_html(report, os.path.join(run_dir, "report.html"))
        R.write_json(report, os.path.join(run_dir, "report.json"))
        if complete:
            os.remove(os.path.join(run_dir, INCOMPLETE))

    @staticmethod
    def _make_run_dir(cfg: C.WorkflowConfig) -> str:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = os.path.join(cfg.output_dir, f"{stamp}-{cfg.name}")
        path, k = base, 1
        while os.path.exists(path):
            k += 1
            path = f"{base}-{k}"
        os.makedirs(path)
        with open(os.path.join(path, INCOMPLETE), "w") as f:
            f.write("this run has not finished: its report is not final\n")
        return os.path.abspath(path)

    @contextlib.contextmanager
    def _progress(self):
        if not self.progress:
            yield None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = self.console or Console(stderr=True)
        with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as prog:
            yield _Bars(prog)


class _Bars:
    """``bars(stage, total)`` adds a bar and returns its ``advance(n=1)``; ``stop()`` freezes the
    clocks of the bars added so far (a stage that stopped early still shows what it ran)."""

    def __init__(self, prog) -> None:
        self.prog, self.open = prog, []

    def __call__(self, stage: str, total: int):
        tid = self.prog.add_task(stage, total=total)
        self.open.append(tid)
        return lambda n=1: self.prog.advance(tid, n)

    def stop(self) -> None:
        for t in self.open:
            self.prog.stop_task(t)
        self.open.clear()


def _tune(ctx: S.Ctx) -> dict:
    from kernelflow.workflow.tune import stage_tune

    return stage_tune(ctx)


def _export(ctx: S.Ctx) -> dict:
    from kernelflow.workflow.deploy import stage_export

    return stage_export(ctx)


def _repository(ctx: S.Ctx) -> dict:
    from kernelflow.workflow.deploy import stage_repository

    return stage_repository(ctx)


def _serve(ctx: S.Ctx) -> dict:
    from kernelflow.workflow.deploy import stage_serve

    return stage_serve(ctx)
