"""Saving and loading fitted objects without pickle.

A file is one safetensors file: the numeric arrays as tensors, and a JSON document in the
header's metadata with the format name and version, the class name, the constructor
parameters and the non-array fitted attributes. Loading reads JSON and raw tensors only: the
class comes from an allow-list of kernelflow classes, parameter names must be the class's own,
attribute names must look like fitted attributes. A malformed or hostile file raises
``ValueError``; nothing in a file can run code.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

FORMAT = "kernelflow"
FORMAT_VERSION = 1
_REGISTRY: dict[str, type] = {}
_ATTR = re.compile(r"^_?[a-z][a-z0-9_]*_$|^_[a-z][a-z0-9_]*$")
_JSON_SCALARS = (str, int, float, bool, type(None))


def persistable(cls: type) -> type:
    """Class decorator: allow ``kernelflow.load`` to rebuild instances of cls."""
    _REGISTRY[cls.__name__] = cls
    return cls


def _to_json(v: Any, what: str) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, type) and issubclass(v, np.generic):  # a dtype parameter such as np.float64
        return {"__dtype__": np.dtype(v).name}
    if isinstance(v, _JSON_SCALARS):
        return v
    if isinstance(v, tuple):
        return {"__tuple__": [_to_json(x, what) for x in v]}
    if isinstance(v, list):
        return [_to_json(x, what) for x in v]
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {k: _to_json(x, what) for k, x in v.items()}
    if isinstance(v, np.ndarray) and v.dtype.kind in "OUS":
        return {"__strings__": [_to_json(x, what) for x in v.tolist()]}
    raise TypeError(f"{what}: cannot save a value of type {type(v).__name__}")


def _from_json(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"__dtype__"}:
            return np.dtype(v["__dtype__"]).type
        if set(v) == {"__tuple__"}:
            return tuple(_from_json(x) for x in v["__tuple__"])
        if set(v) == {"__strings__"}:
            return np.asarray([_from_json(x) for x in v["__strings__"]], dtype=object)
        return {k: _from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    return v


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write obj (a fitted kernelflow estimator) to path as safetensors + JSON."""
    from safetensors.numpy import save_file

    cls = type(obj)
    if _REGISTRY.get(cls.__name__) is not cls:
        raise TypeError(f"{cls.__name__} cannot be saved by kernelflow.save")
    params, state = obj.get_params(deep=False), obj._get_state()
    tensors, attrs = {}, {}
    for name, v in state.items():
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            tensors[name] = np.ascontiguousarray(v)
        else:
            attrs[name] = _to_json(v, name)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "class": cls.__name__,
           "params": {k: _to_json(v, k) for k, v in params.items()}, "attrs": attrs}
    save_file(tensors, os.fspath(path), metadata={"kernelflow": json.dumps(doc)})


def load(path: str | os.PathLike) -> Any:
    """Rebuild an object written by ``save``; raises ValueError for anything else."""
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable kernelflow file ({e})") from None
    try:
        doc = json.loads(meta["kernelflow"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ValueError(f"{path}: no kernelflow metadata in the file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a kernelflow file")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {doc.get('format_version')!r} is not supported "
                         f"(this kernelflow reads version {FORMAT_VERSION})")
    cls = _REGISTRY.get(doc.get("class"))
    if cls is None:
        raise ValueError(f"{path}: unknown class {doc.get('class')!r}")
    params, attrs = doc.get("params"), doc.get("attrs")
    if not isinstance(params, dict) or not isinstance(attrs, dict):
        raise ValueError(f"{path}: malformed kernelflow metadata")
    allowed = set(cls().get_params(deep=False))
    bad = set(params) - allowed
    if bad:
        raise ValueError(f"{path}: unknown parameters for {cls.__name__}: {sorted(bad)}")
    state = {k: _from_json(v) for k, v in attrs.items()}
    state.update(tensors)
    for name in state:
        if not isinstance(name, str) or not _ATTR.match(name):
            raise ValueError(f"{path}: {name!r} is not a fitted attribute name")
    obj = cls(**{k: _from_json(v) for k, v in params.items()})
    try:
        obj._set_state(state)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: inconsistent fitted state for {cls.__name__} ({e})") from None
    return obj
