"""Saving and loading fitted objects without pickle.

A file is one safetensors file: the numeric arrays as tensors, and a JSON document in the
header's metadata with the format name and version, the class name, the constructor
parameters and the non-array fitted attributes. A scikit-learn ``Pipeline``,
``ColumnTransformer`` or ``FeatureUnion`` whose steps are kernelflow estimators (or
"passthrough" / "drop" / identity ``FunctionTransformer``) is saved as the same kind of document,
its steps nested inside, their arrays under prefixed tensor names.

Loading reads JSON and raw tensors only: the class comes from an allow-list (kernelflow's
persistable classes and those scikit-learn containers), parameter names must be the class's
own, and attribute names must look like fitted attributes, must not name anything the class
defines (a method, property or class attribute) and, where a class declares its fitted state
(``_STATE_KEYS``), must be among those. Only regular files are read (a FIFO or device would
block or fail mid-read); nesting is bounded. A malformed or hostile file raises ``ValueError``;
nothing in a file can run code.
"""

from __future__ import annotations

import json
import os
import re
import stat
from typing import Any

import numpy as np

FORMAT = "kernelflow"
FORMAT_VERSION = 1
MAX_DEPTH = 64  # nesting of JSON values and of estimators inside containers
_REGISTRY: dict[str, type] = {}
_ATTR = re.compile(r"^_?[a-z][a-z0-9_]*_$|^_[a-z][a-z0-9_]*$")
_JSON_SCALARS = (str, int, float, bool, type(None))
_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
           "uint64", "bool", "object", "str")


def _register_classes() -> None:
    """Import the modules whose classes are persistable, so a fresh process can load a file
    without having imported them first."""
    import kernelflow.preprocessing  # noqa: F401, PLC0415
    import kernelflow.preprocessing.preprocessor  # noqa: F401, PLC0415


def persistable(cls: type) -> type:
    """Class decorator: allow ``kernelflow.load`` to rebuild instances of cls."""
    _REGISTRY[cls.__name__] = cls
    return cls


def _sklearn_containers() -> dict[str, type]:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import FunctionTransformer

    return {f"{c.__module__.split('._')[0]}.{c.__name__}": c
            for c in (Pipeline, ColumnTransformer, FeatureUnion, FunctionTransformer)}


class _Writer:
    """Turns an object graph into JSON + a flat dict of named arrays."""

    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}

    def value(self, v: Any, what: str, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError(f"{what}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, type) and issubclass(v, np.generic):  # a dtype parameter such as np.float64
            return {"__dtype__": np.dtype(v).name}
        if isinstance(v, _JSON_SCALARS):
            return v
        if isinstance(v, tuple):
            return {"__tuple__": [self.value(x, what, depth + 1) for x in v]}
        if isinstance(v, list):
            return [self.value(x, what, depth + 1) for x in v]
        if isinstance(v, slice):
            return {"__slice__": [self.value(x, what, depth + 1) for x in (v.start, v.stop, v.step)]}
        if isinstance(v, dict) and all(isinstance(k, str) for k in v):
            if any(k.startswith("__") and k.endswith("__") for k in v):
                raise TypeError(f"{what}: dict keys of the form __name__ are reserved")
            return {k: self.value(x, what, depth + 1) for k, x in v.items()}
        if isinstance(v, np.ndarray) and v.dtype.kind in "OUS":
            return {"__strings__": [self.value(x, what, depth + 1) for x in v.tolist()]}
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            key = f"{what}#{len(self.tensors)}"
            self.tensors[key] = np.ascontiguousarray(v)
            return {"__tensor__": key}
        if hasattr(v, "get_params"):
            return {"__object__": self.obj(v, what, depth + 1)}
        raise TypeError(f"{what}: cannot save a value of type {type(v).__name__}")

    def obj(self, obj: Any, what: str, depth: int = 0) -> dict:
        if depth > MAX_DEPTH:
            raise ValueError(f"{what}: estimators nested deeper than {MAX_DEPTH} levels")
        cls = type(obj)
        if _REGISTRY.get(cls.__name__) is cls:
            params = obj.get_params(deep=False)
            state = obj._get_state() if _is_fitted(obj) else None
            doc = {"class": cls.__name__, "params": {k: self.value(v, f"{what}.{k}", depth + 1) for k, v in params.items()}}
            if state is not None:
                attrs = {}
                for name, v in state.items():
                    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf" and depth == 0:
                        self.tensors[name] = np.ascontiguousarray(v)  # top level: plain names (format 1)
                    else:
                        attrs[name] = self.value(v, f"{what}.{name}", depth + 1)
                doc["attrs"] = attrs
            return doc
        containers = _sklearn_containers()
        name = next((n for n, c in containers.items() if c is cls), None)
        if name is None:
            raise TypeError(f"{cls.__name__} cannot be saved by kernelflow.save (kernelflow estimators and "
                            f"scikit-learn {', '.join(c.__name__ for c in containers.values())} of them only)")
        if name.endswith("FunctionTransformer") and (obj.func is not None or obj.inverse_func is not None):
            raise TypeError("a FunctionTransformer with a function cannot be saved without pickle (only the identity)")
        params = obj.get_params(deep=False)
        attrs = {k: v for k, v in vars(obj).items() if k not in params}
        return {"class": name, "params": {k: self.value(v, f"{what}.{k}", depth + 1) for k, v in params.items()},
                "attrs": {k: self.value(v, f"{what}.{k}", depth + 1) for k, v in attrs.items()}}


def _is_fitted(obj: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(obj)
    except NotFittedError:
        return False
    return True


class _Reader:
    def __init__(self, path: str, tensors: dict) -> None:
        self.path, self.tensors, self.used = path, tensors, set()

    def fail(self, msg: str):
        raise ValueError(f"{self.path}: {msg}")

    def value(self, v: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            self.fail(f"metadata nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, dict):
            if len(v) == 1:
                (tag, x), = v.items()
                if tag == "__dtype__":
                    if not isinstance(x, str) or x not in _DTYPES:
                        self.fail(f"__dtype__ must be one of {_DTYPES}, got {x!r}")
                    return np.dtype(x).type
                if tag == "__tuple__":
                    if not isinstance(x, list):
                        self.fail("__tuple__ must hold a list")
                    return tuple(self.value(e, depth + 1) for e in x)
                if tag == "__strings__":
                    if not isinstance(x, list) or not all(isinstance(e, _JSON_SCALARS) for e in x):
                        self.fail("__strings__ must hold a list of scalars")
                    return np.asarray([self.value(e, depth + 1) for e in x], dtype=object)
                if tag == "__slice__":
                    if not isinstance(x, list) or len(x) != 3 or not all(e is None or type(e) is int for e in x):
                        self.fail("__slice__ must hold [start, stop, step] ints or nulls")
                    return slice(*x)
                if tag == "__tensor__":
                    if not isinstance(x, str) or x not in self.tensors:
                        self.fail(f"__tensor__ names no tensor of the file: {x!r}")
                    self.used.add(x)
                    return self.tensors[x]
                if tag == "__object__":
                    return self.obj(x, depth + 1)
            if any(k.startswith("__") and k.endswith("__") for k in v):
                self.fail(f"unknown tag in {sorted(v)[:5]}")
            return {k: self.value(x, depth + 1) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x, depth + 1) for x in v]
        return v

    def obj(self, doc: Any, depth: int = 0, top_tensors: dict | None = None) -> Any:
        if depth > MAX_DEPTH:
            self.fail(f"estimators nested deeper than {MAX_DEPTH} levels")
        if not isinstance(doc, dict):
            self.fail("malformed kernelflow metadata")
        name = doc.get("class")
        if not isinstance(name, str):
            self.fail(f"class must be a string, got {type(name).__name__}")
        _register_classes()
        containers = _sklearn_containers()
        cls = _REGISTRY.get(name) or containers.get(name)
        if cls is None:
            self.fail(f"unknown class {name!r}")
        params, attrs = doc.get("params"), doc.get("attrs")  # no attrs: an unfitted estimator
        if not isinstance(params, dict) or (attrs is not None and not isinstance(attrs, dict)):
            self.fail("malformed kernelflow metadata")
        allowed = set(cls().get_params(deep=False)) if cls not in containers.values() else None
        if allowed is None:
            import inspect

            allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
        bad = set(params) - allowed
        if bad:
            self.fail(f"unknown parameters for {cls.__name__}: {sorted(bad)}")
        state = {k: self.value(v, depth + 1) for k, v in (attrs or {}).items()}
        if top_tensors:
            state.update(top_tensors)
        declared = getattr(cls, "_STATE_KEYS", None)
        for key in state:
            if (not isinstance(key, str) or not _ATTR.match(key) or hasattr(cls, key)
                    or (declared is not None and key not in declared)):
                self.fail(f"{key!r} is not a fitted attribute name of {cls.__name__}")
        kwargs = {k: self.value(v, depth + 1) for k, v in params.items()}
        if name.endswith("FunctionTransformer") and (kwargs.get("func") is not None or kwargs.get("inverse_func") is not None):
            self.fail("a FunctionTransformer may only be the identity")
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as e:
            self.fail(f"invalid parameters for {cls.__name__} ({e})")
        if attrs is None and not top_tensors:
            return obj
        try:
            if cls in containers.values():
                for k, v in state.items():
                    setattr(obj, k, v)
            else:
                obj._set_state(state)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            self.fail(f"inconsistent fitted state for {cls.__name__} ({type(e).__name__}: {e})")
        return obj


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write obj (a fitted kernelflow estimator, or a scikit-learn Pipeline / ColumnTransformer /
    FeatureUnion of them) to path as safetensors + JSON."""
    from safetensors.numpy import save_file

    cls = type(obj)
    if _REGISTRY.get(cls.__name__) is not cls and cls not in _sklearn_containers().values():
        raise TypeError(f"{cls.__name__} cannot be saved by kernelflow.save")
    if _REGISTRY.get(cls.__name__) is cls and not _is_fitted(obj):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"This {cls.__name__} instance is not fitted yet; fit it before saving")
    w = _Writer()
    doc = w.obj(obj, "", 0)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **doc}
    if "attrs" not in doc:
        doc["attrs"] = {}
    save_file(w.tensors, os.fspath(path), metadata={"kernelflow": json.dumps(doc)})


def _check_regular_file(path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as e:
        raise ValueError(f"{path}: not a readable kernelflow file ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket"
                if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise ValueError(f"{path}: not a readable kernelflow file (it is {kind}; only regular files are read)")
    if st.st_size < 8:  # safetensors starts with an 8-byte header length (also catches /proc files)
        raise ValueError(f"{path}: not a readable kernelflow file ({st.st_size} bytes: too short for safetensors)")


def load(path: str | os.PathLike) -> Any:
    """Rebuild an object written by ``save``; raises ValueError for anything else."""
    from safetensors import SafetensorError, safe_open

    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    _check_regular_file(path)
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a readable kernelflow file ({e})") from None
    try:
        doc = json.loads(meta["kernelflow"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ValueError(f"{path}: no kernelflow metadata in the file") from None
    except RecursionError:
        raise ValueError(f"{path}: metadata nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a kernelflow file")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {doc.get('format_version')!r} is not supported "
                         f"(this kernelflow reads version {FORMAT_VERSION})")
    r = _Reader(path, tensors)
    _register_classes()
    name = doc.get("class")
    # format 1: a top-level estimator's arrays are the tensors not referenced from the JSON
    try:
        if isinstance(name, str) and name in _REGISTRY:
            refs = _tensor_refs(doc.get("attrs"), 0)
            top = {k: v for k, v in tensors.items() if k not in refs}
            return r.obj(doc, 0, top_tensors=top)
        return r.obj(doc, 0)
    except RecursionError:
        raise ValueError(f"{path}: metadata nested too deeply") from None


def _tensor_refs(v: Any, depth: int) -> set:
    if depth > MAX_DEPTH:
        return set()
    if isinstance(v, dict):
        if set(v) == {"__tensor__"} and isinstance(v["__tensor__"], str):
            return {v["__tensor__"]}
        return set().union(*(_tensor_refs(x, depth + 1) for x in v.values())) if v else set()
    if isinstance(v, list):
        return set().union(*(_tensor_refs(x, depth + 1) for x in v)) if v else set()
    return set()
