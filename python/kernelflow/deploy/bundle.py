"""A portable bundle: the ONNX graph (preprocessing + model), the fitted preprocessor and a JSON
manifest that says what the graph takes and returns and holds a SHA-256 of every file.

    <dir>/model.onnx               (+ model.onnx.data when the model is over 2 GB)
    <dir>/preprocessor.safetensors (kernelflow.save: safetensors + JSON, never pickle)
    <dir>/manifest.json

``load_bundle`` checks every hash before it reads anything else, so a bundle that changed in
transit is refused instead of serving wrong numbers.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

FORMAT = "kernelflow-bundle"
FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
PREPROCESSOR_FILE = "preprocessor.safetensors"
MANIFEST_FILE = "manifest.json"
TASKS = ("classification", "regression", "preprocess")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _versions() -> dict:
    import importlib.metadata as md

    import torch

    import kernelflow

    out = {"kernelflow": kernelflow.__version__, "torch": torch.__version__}
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:  # pragma: no cover
            out[name] = None
    return out


def _value_kind(values) -> str:
    kinds = set()
    for v in values:
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int")
        elif isinstance(v, float):
            kinds.add("float")
        elif isinstance(v, str):
            kinds.add("string")
        elif v is None:
            continue
        else:
            kinds.add(type(v).__name__)
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none")


def _columns(pre) -> dict:
    """Column names and kinds of a fitted Preprocessor, and each categorical column's categories."""
    from kernelflow.preprocessing.preprocessor import _json_value

    cats = {}
    for p in pre._cat_plans:
        values = [_json_value(v) for v in p.categories]
        cats[p.name] = {"categories": values, "value_type": _value_kind(values)}
    return {"numeric": list(pre.numeric_columns_), "categorical": list(pre.categorical_columns_),
            "passthrough": list(pre.passthrough_columns_),
            "dtypes": {**{c: "float32" for c in pre.numeric_columns_},
                       **{c: "int64 codes (-1 = unknown) of " + cats[c]["value_type"] for c in pre.categorical_columns_},
                       **{c: "float32" for c in pre.passthrough_columns_}},
            "categories": cats, "features_out": [str(n) for n in pre.get_feature_names_out()]}


def _io(path) -> tuple[list[dict], list[dict]]:
    import onnx

    m = onnx.load(os.fspath(path), load_external_data=False)

    def one(v) -> dict:
        t = v.type.tensor_type
        dims = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
        return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims}

    return [one(v) for v in m.graph.input], [one(v) for v in m.graph.output]


@dataclass
class Bundle:
    """A loaded, verified bundle (see ``load_bundle``)."""

    path: Path
    manifest: dict
    preprocessor: Any

    @property
    def onnx_path(self) -> Path:
        return self.path / self.manifest["model"]["file"]

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.manifest["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.manifest["outputs"]]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def classes(self) -> list | None:
        return self.manifest["classes"]

    def runner(self, providers=None, **kw):
        """An ``OnnxRunner`` over this bundle's graph with its preprocessor."""
        from kernelflow.deploy.onnx_runner import OnnxRunner

        return OnnxRunner(self.onnx_path, providers, preprocessor=self.preprocessor, **kw)


def save_bundle(directory, preprocessor, model, *, task: str | None = None, classes: Sequence | None = None,
                opset: int | None = None, dtype: str = "float32", output: str | None = None) -> Path:
    """Write a bundle for a fitted ``kernelflow.Preprocessor`` and the torch ``model`` that takes
    its output (``model`` None: the preprocessing graph alone). ``task``: "classification" or
    "regression" (default: classification when ``classes`` are given, else regression;
    "preprocess" without a model). ``classes``: the label of each output column of a classifier.
    ``output``: what the graph's ``output`` is, for the manifest (default: the model's raw output,
    e.g. logits for a classifier). Returns the directory."""
    from kernelflow.deploy.onnx_export import export_onnx

    d = Path(os.fspath(directory))
    if preprocessor is None:
        raise ValueError("save_bundle needs a fitted kernelflow.Preprocessor (the graph's inputs come from it)")
    if task is None:
        task = "preprocess" if model is None else ("classification" if classes is not None else "regression")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if (model is None) != (task == "preprocess"):
        raise ValueError("task='preprocess' is for a bundle without a model, and only for it")
    if classes is not None:
        classes = [c.item() if hasattr(c, "item") else c for c in classes]
        if task != "classification":
            raise ValueError("classes are only meaningful for task='classification'")
        try:
            json.dumps(classes)
        except TypeError as e:
            raise TypeError(f"classes must be JSON values (str, int, float, bool): {e}") from None
        if len(set(map(repr, classes))) != len(classes):
            raise ValueError("classes must be distinct")
    d.mkdir(parents=True, exist_ok=True)
    for stale in (MANIFEST_FILE, MODEL_FILE, MODEL_FILE + ".data", PREPROCESSOR_FILE):
        if (d / stale).exists():
            (d / stale).unlink()
    onnx_path = export_onnx(model, d / MODEL_FILE, preprocessor=preprocessor, opset=opset, dtype=dtype)
    import kernelflow

    kernelflow.save(preprocessor, d / PREPROCESSOR_FILE)
    inputs, outputs = _io(onnx_path)
    if task == "classification" and classes is not None:
        width = outputs[0]["shape"][-1] if len(outputs[0]["shape"]) == 2 else None
        if isinstance(width, int) and width != len(classes):
            for f in (MODEL_FILE, MODEL_FILE + ".data", PREPROCESSOR_FILE):  # no half-written bundle left behind
                if (d / f).exists():
                    (d / f).unlink()
            raise ValueError(f"the model returns {width} columns but {len(classes)} classes were given")
    if output is None:
        output = {"classification": "the model's raw output per class, in `classes` order (logits for a "
                                    "classifier trained with cross-entropy): apply softmax / argmax on the client",
                  "regression": "the model's prediction (in the units of the training target)",
                  "preprocess": "the preprocessed feature matrix (feature names: columns.features_out)"}[task]
    cols = _columns(preprocessor)
    for i in inputs:
        i["columns"] = {"num": cols["numeric"], "cat": cols["categorical"], "passthrough": cols["passthrough"]}[i["name"]]
    outputs[0]["meaning"] = output
    files = [MODEL_FILE, PREPROCESSOR_FILE] + ([MODEL_FILE + ".data"] if (d / (MODEL_FILE + ".data")).exists() else [])
    from kernelflow.deploy.onnx_export import DEFAULT_OPSET

    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": _versions(),
        "task": task, "classes": classes,
        "model": {"file": MODEL_FILE, "opset": opset or DEFAULT_OPSET, "dtype": dtype,
                  "preprocessing_dtype": "float32", "batch_dim": "N"},
        "preprocessor": {"file": PREPROCESSOR_FILE, "n_features_out": int(preprocessor.n_features_out_),
                         # "error": the graph encodes unknown codes (-1) as zeros; clients must refuse them
                         "handle_unknown": preprocessor.handle_unknown},
        "inputs": inputs, "outputs": outputs, "columns": cols,
        "files": {f: {"sha256": sha256_file(d / f), "bytes": (d / f).stat().st_size} for f in files},
    }
    tmp = d / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=False, allow_nan=False))
    os.replace(tmp, d / MANIFEST_FILE)
    return d


def read_manifest(directory) -> dict:
    """The manifest of a bundle directory, checked for shape (not the file hashes)."""
    d = Path(os.fspath(directory))
    mp = d / MANIFEST_FILE
    if not mp.is_file():
        raise ValueError(f"{str(d)!r} is not a kernelflow bundle (no {MANIFEST_FILE})")
    try:
        m = json.loads(mp.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{mp}: not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ValueError(f"{mp}: not a {FORMAT} manifest")
    if m.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{mp}: format_version {m.get('format_version')!r} is not {FORMAT_VERSION}")
    for key in ("task", "inputs", "outputs", "files", "model", "preprocessor", "columns"):
        if key not in m:
            raise ValueError(f"{mp}: missing {key!r}")
    if m["task"] not in TASKS:
        raise ValueError(f"{mp}: task {m['task']!r} is not one of {TASKS}")
    files = m["files"]
    if not isinstance(files, dict) or not files:
        raise ValueError(f"{mp}: 'files' must map file names to hashes")
    for name, info in files.items():
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise ValueError(f"{mp}: file name {name!r} is not a plain name inside the bundle")
        if not isinstance(info, dict) or not re.fullmatch(r"[0-9a-f]{64}", str(info.get("sha256", ""))):
            raise ValueError(f"{mp}: file {name!r} has no valid sha256")
    for key in ("model", "preprocessor"):
        if m[key].get("file") not in files:
            raise ValueError(f"{mp}: the {key} file is not listed (with its hash) in 'files'")
    return m


def verify_bundle(directory) -> dict:
    """Check every listed file's SHA-256 (and size); returns the manifest or raises ValueError."""
    d = Path(os.fspath(directory))
    m = read_manifest(d)
    for name, info in m["files"].items():
        f = d / name
        if not f.is_file():
            raise ValueError(f"bundle {str(d)!r}: {name} is missing")
        if "bytes" in info and f.stat().st_size != info["bytes"]:
            raise ValueError(f"bundle {str(d)!r}: {name} has {f.stat().st_size} bytes, the manifest says {info['bytes']}")
        if sha256_file(f) != info["sha256"]:
            raise ValueError(f"bundle {str(d)!r}: {name} does not match its SHA-256 in the manifest (changed or corrupt)")
    return m


def load_bundle(directory) -> Bundle:
    """Verify a bundle's hashes, then load its preprocessor. Raises ValueError on any mismatch."""
    d = Path(os.fspath(directory))
    m = verify_bundle(d)
    import kernelflow
    import kernelflow.preprocessing  # noqa: F401  (registers the classes kernelflow.load may rebuild)

    pre = kernelflow.load(d / m["preprocessor"]["file"])
    if type(pre).__name__ != "Preprocessor":
        raise ValueError(f"bundle {str(d)!r}: {m['preprocessor']['file']} holds a {type(pre).__name__}, not a Preprocessor")
    return Bundle(d, m, pre)
