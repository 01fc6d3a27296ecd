"""A bundle as a Triton Inference Server model repository.

``write_model_repository(bundle_dir, repo_dir)`` writes three models that Triton serves as they
are (names for ``name="kernelflow"``):

- ``kernelflow_encode`` (python backend, numpy only): one input per original column, named
  after it (numbers FP32, strings BYTES, integer / float / bool categories INT64 / FP64 / BOOL),
  outputs ``num`` / ``cat`` (/ ``passthrough``), the graph's inputs; it also exports the drift
  gauges (``kernelflow.monitor``) on the metrics endpoint;
- ``kernelflow_model``: the bundle's graph on the ``onnxruntime`` backend, the ``tensorrt_plan``
  backend (an engine in the bundle) or the python backend running ONNX Runtime (servers without
  the onnxruntime backend, such as nvidia-pytriton's);
- ``kernelflow``: the ensemble that clients call (columns in, ``output`` out).

Every write adds a numbered version to ``<name>_encode`` and ``<name>_model`` (both loaded:
``version_policy: all``); ensembles cannot pass a requested version on to their steps, so
``<name>`` serves the newest version and ``<name>_v<k>`` serves version k, for every k written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from kernelflow.deploy.triton_models import encode as _enc

_MODELS_DIR = Path(__file__).parent / "triton_models"
_DRIFT_SRC = Path(__file__).parent.parent / "monitor" / "drift_stats.py"
BACKENDS = ("auto", "onnxruntime", "tensorrt", "python")
_ONNX_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 5: "TYPE_INT16", 6: "TYPE_INT32", 7: "TYPE_INT64",
               9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 16: "TYPE_BF16"}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_BLOCKS = ("num", "cat", "passthrough")


# ---------------------------------------------------------------------------- reading the bundle
def _read_bundle(bundle_dir: Path):
    """(preprocessor, graph inputs [(name, type, dims)], outputs, manifest or {}, reference or None)."""
    import kernelflow.preprocessing  # noqa: F401 - registers the classes kernelflow.load rebuilds

    if not bundle_dir.is_dir():
        raise ValueError(f"bundle_dir must be a bundle folder, got {str(bundle_dir)!r} (not a folder)")
    from kernelflow.deploy.bundle import load_bundle

    b = load_bundle(bundle_dir)  # checks the manifest and every file's SHA-256 first
    pre, onnx_path, manifest = b.preprocessor, Path(b.onnx_path), dict(b.manifest)
    inputs, outputs = _graph_io(onnx_path)
    ref = bundle_dir / "drift_reference.json"
    return pre, onnx_path, inputs, outputs, manifest, (ref if ref.is_file() else None)


def _graph_io(onnx_path: Path):
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    init = {i.name for i in m.graph.initializer}

    def io(vi):
        t = vi.type.tensor_type
        if t.elem_type not in _ONNX_TYPES:
            raise ValueError(f"graph tensor {vi.name!r} has ONNX type {t.elem_type}, which Triton cannot carry")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        if not dims:
            raise ValueError(f"graph tensor {vi.name!r} has no batch dimension")
        return vi.name, _ONNX_TYPES[t.elem_type], dims[1:]

    return [io(v) for v in m.graph.input if v.name not in init], [io(v) for v in m.graph.output]


# ---------------------------------------------------------------------------- encoder spec
def encoder_spec(pre, blocks, reference: dict | None, pipeline: str) -> dict:
    """encoder.json: what the encode step needs from the fitted preprocessor."""
    cats = []
    for p in pre._cat_plans:
        values = [v.item() if hasattr(v, "item") else v for v in p.categories]
        kind = _enc.category_kind(values, p.name)
        if kind == "string" and _enc.MISSING_BYTES.decode() in values:
            raise ValueError(f"categorical column {p.name!r} has the NUL string as a category; "
                             "it marks missing values on the wire")
        fill = [i for i, v in enumerate(values) if v == p.fill and type(v) is type(p.fill)]
        cats.append({"name": p.name, "kind": kind, "categories": values, "fill_code": fill[0] if fill else -1})
    return {"format": _enc.ENCODER_FORMAT, "version": _enc.ENCODER_VERSION, "pipeline": pipeline,
            "numeric": list(pre.numeric_columns_), "passthrough": list(pre.passthrough_columns_),
            "categorical": cats, "handle_unknown": pre.handle_unknown, "blocks": list(blocks), "reference": reference}


# ---------------------------------------------------------------------------- config.pbtxt
def _q(s: str) -> str:
    return json.dumps(s)  # a pbtxt string literal is a JSON one for these names


def _tensors(kind: str, items) -> str:
    rows = []
    for name, dtype, dims in items:
        shape = list(dims) if dims else [1]
        extra = "" if dims else " reshape: { shape: [ ] }"  # [N] tensors travel as [N, 1]
        rows.append(f"  {{ name: {_q(name)} data_type: {dtype} dims: [ {', '.join(map(str, shape))} ]{extra} }}")
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def _batching(max_batch_size: int, delay_us: int) -> str:
    pref = sorted({b for b in (64, 256, 1024) if b < max_batch_size} | {max_batch_size})
    return f"dynamic_batching {{ preferred_batch_size: [ {', '.join(map(str, pref))} ] max_queue_delay_microseconds: {delay_us} }}\n"


def _config(name, backend_line, max_batch_size, inputs, outputs, *, instances, kind="KIND_CPU", batching="", extra=""):
    return (f"name: {_q(name)}\n{backend_line}\nmax_batch_size: {max_batch_size}\n"
            + _tensors("input", inputs) + _tensors("output", outputs) + batching
            + f"instance_group [ {{ count: {instances} kind: {kind} }} ]\n" + extra)


def _ensemble(name, max_batch_size, col_inputs, outputs, step_names, encode_outputs, graph_inputs, version):
    enc_name, model_name = step_names
    in_map = " ".join(f"input_map {{ key: {_q(n)} value: {_q(n)} }}" for n, _, _ in col_inputs)
    enc_out = " ".join(f"output_map {{ key: {_q(b)} value: {_q('_kf_' + b)} }}" for b in encode_outputs)
    mod_in = " ".join(f"input_map {{ key: {_q(b)} value: {_q('_kf_' + b)} }}" for b, _, _ in graph_inputs)
    mod_out = " ".join(f"output_map {{ key: {_q(n)} value: {_q(n)} }}" for n, _, _ in outputs)
    return (f"name: {_q(name)}\nplatform: \"ensemble\"\nmax_batch_size: {max_batch_size}\n"
            + _tensors("input", col_inputs) + _tensors("output", outputs)
            + "ensemble_scheduling {\n  step [\n"
            + f"    {{ model_name: {_q(enc_name)} model_version: {version} {in_map} {enc_out} }},\n"
            + f"    {{ model_name: {_q(model_name)} model_version: {version} {mod_in} {mod_out} }}\n  ]\n}}\n")


# ---------------------------------------------------------------------------- the writer
def _versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def _auto_backend() -> str:
    from kernelflow.deploy.server import find_server

    inst = find_server()
    if inst is not None and "onnxruntime" not in inst.backends:
        return "python"  # e.g. nvidia-pytriton's server: python backend only
    return "onnxruntime"


def _write_config(model_dir: Path, text: str, what: str) -> None:
    cfg = model_dir / "config.pbtxt"
    if cfg.is_file() and cfg.read_text() != text and _versions(model_dir):
        raise ValueError(f"{what}: this version's columns, dtypes or shapes differ from the versions already in "
                         f"{str(model_dir)!r}; write it under another name")
    model_dir.mkdir(parents=True, exist_ok=True)
    cfg.write_text(text)


def write_model_repository(bundle_dir, repo_dir, *, name: str = "kernelflow", backend: str = "auto",
                           max_batch_size: int = 4096, instances: int = 1, version: int | None = None,
                           reference=None, queue_delay_us: int = 200) -> dict:
    """Write (or add a version to) a Triton model repository serving the bundle in ``bundle_dir``.

    Parameters
    ----------
    backend : "onnxruntime" | "tensorrt" (a TensorRT engine, ``model.plan``, in the bundle) |
        "python" (ONNX Runtime inside the python backend) | "auto": "python" when the server
        ``kernelflow serve`` finds here has no onnxruntime backend, else "onnxruntime".
    max_batch_size : rows per request and per dynamic batch (Triton's max_batch_size).
    instances : model-step instances (the encode step runs one instance: its drift statistics
        accumulate in one place).
    version : the version number to write; None = one past the newest already there.
    reference : the drift gauges' training profile: a ``kernelflow.monitor.DriftReference``, its
        dict or JSON path, or the training table; None = the bundle's ``drift_reference.json``
        if it has one, else what the preprocessor alone knows (categorical measures only).
    queue_delay_us : the dynamic batcher's maximum queue delay.

    Returns a dict with the repository path, the version written and the model names.
    """
    from kernelflow.monitor import as_reference

    bundle_dir, repo_dir = Path(bundle_dir), Path(repo_dir)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be letters, digits, '_', '.', '-', got {name!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    for arg, v, lo in (("max_batch_size", max_batch_size, 1), ("instances", instances, 1), ("queue_delay_us", queue_delay_us, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{arg} must be an int >= {lo}, got {v!r}")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise ValueError(f"version must be an int >= 1 or None, got {version!r}")
    pre, onnx_path, graph_inputs, graph_outputs, manifest, bundle_ref = _read_bundle(bundle_dir)
    names = [n for n, _, _ in graph_inputs]
    if not set(names) <= set(_BLOCKS) or "cat" not in names and pre._cat_plans or "num" not in names and pre.numeric_columns_:
        raise ValueError(f"the bundle's graph takes inputs {names}; expected num / cat (/ passthrough)")
    if backend == "auto":
        backend = _auto_backend()
    # Triton has no zero-width dimension: a block without columns (no numeric or no categorical
    # column) is declared variable (-1) and travels as [N, 0]; only the python backend takes that
    empty = [n for n, _, d in graph_inputs if 0 in d]
    if empty and backend != "python":
        raise ValueError(f"the graph's inputs {empty} have no columns, which Triton's {backend} backend cannot "
                         "declare; use backend='python' for this pipeline")
    graph_inputs = [(n, t, [-1 if x == 0 else x for x in d]) for n, t, d in graph_inputs]
    plan = None
    if backend == "tensorrt":
        plans = sorted(bundle_dir.glob("*.plan")) + sorted(bundle_dir.glob("*.engine"))
        if not plans:
            raise ValueError(f"backend='tensorrt' needs a TensorRT engine (model.plan) in {str(bundle_dir)!r}; "
                             "build one with kernelflow.deploy on a GPU machine")
        plan = plans[0]

    ref = as_reference(pre, reference if reference is not None else bundle_ref)
    spec = encoder_spec(pre, names, ref.to_dict(), name)
    encoder = _enc.Encoder(spec)
    col_inputs = [(n, "TYPE_STRING" if t == "BYTES" else f"TYPE_{t}", [1]) for n, t in encoder.columns()]
    clash = {n for n, _, _ in col_inputs} & (set(_BLOCKS) | {n for n, _, _ in graph_outputs})
    if clash:
        raise ValueError(f"columns {sorted(clash)} share a name with the pipeline's internal tensors "
                         f"{list(_BLOCKS)} or outputs; rename them before fitting")
    for n, _, _ in col_inputs:
        if not n or any(ch in n for ch in "\"\\\n\r\t") or n.startswith("_kf_"):
            raise ValueError(f"column name {n!r} cannot be a Triton tensor name")

    enc_name, model_name = f"{name}_encode", f"{name}_model"
    existing = _versions(repo_dir / model_name)
    version = version if version is not None else (existing[-1] + 1 if existing else 1)
    repo_dir.mkdir(parents=True, exist_ok=True)
    all_versions = "version_policy: { all { } }\n"

    # encode step
    enc_outputs = [(b, t, d) for b, t, d in graph_inputs]
    _write_config(repo_dir / enc_name, _config(enc_name, 'backend: "python"', max_batch_size, col_inputs, enc_outputs,
                                               instances=1, batching=_batching(max_batch_size, queue_delay_us),
                                               extra=all_versions), enc_name)
    vdir = repo_dir / enc_name / str(version)
    if vdir.exists():
        shutil.rmtree(vdir)
    vdir.mkdir()
    shutil.copy2(_MODELS_DIR / "encode_model.py", vdir / "model.py")
    shutil.copy2(_MODELS_DIR / "encode.py", vdir / "kernelflow_encode.py")
    shutil.copy2(_DRIFT_SRC, vdir / "kernelflow_drift_stats.py")
    (vdir / "encoder.json").write_text(json.dumps(spec))

    # model step; a QDQ graph runs at ONNX Runtime's basic optimization level, as OnnxRunner runs
    # it (kernelflow.deploy.onnx_runner: higher levels fuse Q/DQ into machine-dependent int8 kernels)
    from kernelflow.deploy.onnx_runner import graph_op_types

    quantized = bool({"QuantizeLinear", "DequantizeLinear"} & graph_op_types(onnx_path))
    batching = _batching(max_batch_size, queue_delay_us)
    if backend == "onnxruntime":
        opt = "optimization { graph { level: -1 } }\n" if quantized else ""  # -1: ORT_ENABLE_BASIC
        text = _config(model_name, 'platform: "onnxruntime_onnx"', max_batch_size, graph_inputs, graph_outputs,
                       instances=instances, batching=batching, extra=all_versions + opt)
    elif backend == "tensorrt":
        text = _config(model_name, 'platform: "tensorrt_plan"', max_batch_size, graph_inputs, graph_outputs,
                       instances=instances, kind="KIND_GPU", batching=batching, extra=all_versions)
    else:
        text = _config(model_name, 'backend: "python"', max_batch_size, graph_inputs, graph_outputs,
                       instances=instances, batching=batching, extra=all_versions)
    _write_config(repo_dir / model_name, text, model_name)
    mdir = repo_dir / model_name / str(version)
    if mdir.exists():
        shutil.rmtree(mdir)
    mdir.mkdir()
    if backend == "tensorrt":
        shutil.copy2(plan, mdir / "model.plan")
    else:
        for f in onnx_path.parent.glob(onnx_path.name + "*"):  # model.onnx and any external-data file
            shutil.copy2(f, mdir / f.name)
        if onnx_path.name != "model.onnx":
            os.replace(mdir / onnx_path.name, mdir / "model.onnx")
    if backend == "python":
        shutil.copy2(_MODELS_DIR / "onnx_model.py", mdir / "model.py")
        (mdir / "onnx_model.json").write_text(json.dumps({"outputs": [n for n, _, _ in graph_outputs],
                                                          "optimization": "basic" if quantized else "all"}))

    # ensembles: <name> serves the newest version, <name>_v<k> version k
    newest = max(_versions(repo_dir / model_name))
    for ens, pinned in ((f"{name}_v{version}", version), (name, newest)):
        edir = repo_dir / ens
        edir.mkdir(exist_ok=True)
        for old in _versions(edir):
            if old != pinned:
                shutil.rmtree(edir / str(old))
        (edir / str(pinned)).mkdir(exist_ok=True)
        (edir / "config.pbtxt").write_text(_ensemble(ens, max_batch_size, col_inputs, graph_outputs,
                                                     (enc_name, model_name), names, graph_inputs, pinned))
    (repo_dir / f"{name}_v{version}" / "kernelflow.json").write_text(json.dumps(
        {"bundle": str(bundle_dir.resolve()), "version": version, "backend": backend,
         "manifest_versions": manifest.get("versions")}, default=str))
    return {"repository": str(repo_dir), "name": name, "version": version, "backend": backend,
            "models": [name, f"{name}_v{version}", enc_name, model_name]}


def repository_models(repo_dir) -> list[str]:
    """Model folders of a repository (those with a config.pbtxt)."""
    repo_dir = Path(repo_dir)
    return sorted(p.name for p in repo_dir.iterdir() if (p / "config.pbtxt").is_file()) if repo_dir.is_dir() else []
