"""kernelflow.save / load: hostile files and paths raise ValueError (TypeError for a path of the
wrong type), never hang, recurse or replace methods; scikit-learn containers round-trip."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from _case import case, equal, raises


def _tmp(name="f.safetensors"):
    return os.path.join(tempfile.mkdtemp(prefix="kf_io_"), name)


def _good():
    import kernelflow
    from kernelflow.preprocessing import StandardScaler

    p = _tmp()
    StandardScaler().fit(np.random.default_rng(0).normal(size=(20, 3))).save(p)
    from safetensors import safe_open

    with safe_open(p, framework="numpy") as f:
        return json.loads(f.metadata()["kernelflow"]), {k: f.get_tensor(k) for k in f.keys()}, kernelflow


def _write(doc, tensors, raw_meta=None):
    from safetensors.numpy import save_file

    p = _tmp()
    save_file(tensors, p, metadata={"kernelflow": raw_meta if raw_meta is not None else json.dumps(doc)})
    return p


def _nest(depth):
    v = 1
    for _ in range(depth):
        v = [v]
    return v


_HOSTILE_DOCS = {
    "nested_900_deep_attr": (lambda d: d["attrs"].update(mean_=_nest(900)), "nested"),
    "nested_5000_deep_raw_json": (None, "nested too deeply|not a kernelflow|nested deeper"),
    "class_is_list": (lambda d: d.update({"class": ["StandardScaler"]}), "class must be a string"),
    "class_is_dict": (lambda d: d.update({"class": {"a": 1}}), "class must be a string"),
    "class_is_none": (lambda d: d.update({"class": None}), "class must be a string"),
    "class_os_system": (lambda d: d.update({"class": "os.system"}), "unknown class"),
    "class_builtins_eval": (lambda d: d.update({"class": "builtins.eval"}), "unknown class"),
    "dtype_garbage": (lambda d: d["params"].update(copy={"__dtype__": "garbage"}), "__dtype__ must be one of"),
    "dtype_void": (lambda d: d["params"].update(copy={"__dtype__": "V8"}), "__dtype__ must be one of"),
    "dtype_not_str": (lambda d: d["params"].update(copy={"__dtype__": ["float32"]}), "__dtype__ must be one of"),
    "private_method_validate": (lambda d: d["attrs"].update(_validate=1), "'_validate' is not a fitted attribute"),
    "public_method_transform_": (lambda d: d["attrs"].update(transform=1), "'transform' is not a fitted attribute"),
    "dunder_class": (lambda d: d["attrs"].update(__class__="x"), "not a fitted attribute"),
    "dunder_dict": (lambda d: d["attrs"].update(__dict__={}), "not a fitted attribute"),
    "property_name": (lambda d: d["attrs"].update(_repr_html_="x"), "not a fitted attribute"),
    "unknown_param": (lambda d: d["params"].update(evil=1), "unknown parameters"),
    "params_is_list": (lambda d: d.update(params=[1]), "malformed"),
    "attrs_is_string": (lambda d: d.update(attrs="x"), "malformed"),
    "format_version_99": (lambda d: d.update(format_version=99), "format version"),
    "format_other": (lambda d: d.update(format="pickle"), "not a kernelflow file"),
    "n_features_in_string": (lambda d: d["attrs"].update(n_features_in_="five"), "inconsistent fitted state"),
    "tuple_tag_not_list": (lambda d: d["params"].update(copy={"__tuple__": 5}), "__tuple__ must hold a list"),
    "strings_tag_nested": (lambda d: d["attrs"].update(x_={"__strings__": [[1]]}), "__strings__ must hold"),
    "slice_tag_floats": (lambda d: d["attrs"].update(x_={"__slice__": [0.5, 1, 2]}), "__slice__ must hold"),
    "tensor_tag_missing": (lambda d: d["attrs"].update(x_={"__tensor__": "nope"}), "__tensor__ names no tensor"),
    "unknown_dunder_tag": (lambda d: d["attrs"].update(x_={"__reduce__": 1}), "unknown tag"),
    "object_tag_bad_class": (lambda d: d["attrs"].update(x_={"__object__": {"class": "subprocess.Popen", "params": {}}}),
                             "unknown class"),
    "metadata_not_json": (None, "no kernelflow metadata"),
    "metadata_json_list": (None, "not a kernelflow file"),
}

for name, (mut, match) in _HOSTILE_DOCS.items():
    @case(f"io/hostile_metadata_{name}")
    def _(name=name, mut=mut, match=match):
        doc, tensors, kernelflow = _good()
        raw = None
        if name == "nested_5000_deep_raw_json":
            raw = '{"format": "kernelflow", "format_version": 1, "class": "StandardScaler", "params": {}, "attrs": {"x_": ' \
                  + "[" * 5000 + "]" * 5000 + "}}"
        elif name == "metadata_not_json":
            raw = "{not json"
        elif name == "metadata_json_list":
            raw = "[1, 2]"
        else:
            mut(doc)
        raises(ValueError, match, kernelflow.load, _write(doc, tensors, raw))


@case("io/fifo_is_refused_not_blocking", timeout=20)
def _():
    import kernelflow

    p = _tmp("fifo")
    os.mkfifo(p)
    raises(ValueError, "it is a FIFO; only regular files", kernelflow.load, p)


@case("io/device_directory_proc_paths")
def _():
    import kernelflow

    raises(ValueError, "it is a device", kernelflow.load, "/dev/null")
    raises(ValueError, "it is a device", kernelflow.load, "/dev/zero")
    raises(ValueError, "it is a directory", kernelflow.load, tempfile.mkdtemp())
    raises(ValueError, "too short for safetensors", kernelflow.load, "/proc/self/status")
    raises(ValueError, "not a readable kernelflow file", kernelflow.load, "/nonexistent/x.safetensors")


@case("io/path_of_wrong_type")
def _():
    import kernelflow

    for bad in (["a"], {"a": 1}, 3, None):
        raises(TypeError, "path must be a str or os.PathLike", kernelflow.load, bad)


@case("io/truncated_and_garbage_files")
def _():
    import kernelflow

    doc, tensors, _ = _good()
    p = _write(doc, tensors)
    data = open(p, "rb").read()
    for i, blob in enumerate((data[: len(data) // 2], data[:9], b"\xff" * 64, (2**62).to_bytes(8, "little") + b"{}",
                              b"\x80\x04\x95pickle!" * 4)):
        q = _tmp(f"bad{i}.st")
        open(q, "wb").write(blob)
        raises(ValueError, "not a readable kernelflow file", kernelflow.load, q)


@case("io/tensor_shape_lie_in_header")
def _():
    import kernelflow

    doc, tensors, _ = _good()
    p = _write(doc, tensors)
    data = bytearray(open(p, "rb").read())
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    k = next(k for k in header if k != "__metadata__")
    header[k]["shape"] = [10**9]
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    q = _tmp("lie.st")
    open(q, "wb").write(len(h).to_bytes(8, "little") + h + bytes(data[8 + n:]))
    raises(ValueError, "not a readable kernelflow file", kernelflow.load, q)


@case("io/preprocessor_inconsistent_plan")
def _():
    import pandas as pd
    from safetensors import safe_open

    import kernelflow

    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "c": ["x", "y", "x"]})
    p = _tmp()
    kernelflow.Preprocessor().fit(df).save(p)
    with safe_open(p, framework="numpy") as f:
        doc, tensors = json.loads(f.metadata()["kernelflow"]), {k: f.get_tensor(k) for k in f.keys()}
    for mut in (lambda d: d["attrs"]["_cat_plans"][0].update(slots=[0, 99]),
                lambda d: d["attrs"]["_cat_plans"][0].update(slots=[0]),
                lambda d: d["attrs"].update(n_features_out_=-3),
                lambda d: d["attrs"].update(numeric_columns_=[1, 2]),
                lambda d: d["attrs"].update(_ARRAYS=["x"])):
        dd = json.loads(json.dumps(doc))
        mut(dd)
        raises(ValueError, "inconsistent fitted state|not a fitted attribute", kernelflow.load, _write(dd, tensors))


@case("io/int8_linear_float_weight_q")
def _():
    import torch
    from safetensors.torch import load_file, save_file

    from kernelflow.nn import Int8Linear

    q = Int8Linear.from_float(torch.nn.Linear(4, 3))
    p = _tmp()
    q.save(p)
    from safetensors import safe_open

    with safe_open(p, framework="pt") as f:
        meta = f.metadata()
    t = load_file(p)
    k = next(k for k in t if "weight" in k and t[k].dtype == torch.int8)
    t[k] = torch.full(t[k].shape, 1e9)
    save_file(t, p, metadata=meta)
    raises(ValueError, "weight", Int8Linear.load, p)


def _sk_data():
    import pandas as pd

    rng = np.random.default_rng(1)
    return pd.DataFrame({"a": rng.normal(size=50), "b": np.where(rng.random(50) < 0.2, np.nan, rng.normal(size=50)),
                         "c": rng.choice(["x", "y", "z"], 50), "d": rng.integers(0, 5, 50)})


@case("io/sklearn_pipeline_round_trip")
def _():
    from sklearn.pipeline import make_pipeline

    import kernelflow
    from kernelflow.preprocessing import MinMaxScaler, SimpleImputer, StandardScaler

    df = _sk_data()[["a", "b"]]
    pipe = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), MinMaxScaler()).fit(df)
    p = _tmp()
    kernelflow.save(pipe, p)
    assert b"pickle" not in open(p, "rb").read()
    back = kernelflow.load(p)
    assert type(back).__name__ == "Pipeline" and [n for n, _ in back.steps] == [n for n, _ in pipe.steps]
    equal(back.transform(df), pipe.transform(df))


@case("io/sklearn_column_transformer_round_trip")
def _():
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    import kernelflow
    from kernelflow.preprocessing import OneHotEncoder, RobustScaler, SimpleImputer

    df = _sk_data()
    for remainder in ("passthrough", "drop"):
        ct = ColumnTransformer([("num", make_pipeline(SimpleImputer(), RobustScaler()), ["a", "b"]),
                                ("cat", OneHotEncoder(handle_unknown="ignore"), ["c"])], remainder=remainder).fit(df)
        p = _tmp()
        kernelflow.save(ct, p)
        back = kernelflow.load(p)
        equal(back.transform(df), ct.transform(df), remainder)
        assert list(back.get_feature_names_out()) == list(ct.get_feature_names_out())


@case("io/sklearn_feature_union_and_unfitted_pipeline")
def _():
    from sklearn.pipeline import FeatureUnion, make_pipeline

    import kernelflow
    from kernelflow.preprocessing import MaxAbsScaler, StandardScaler

    df = _sk_data()[["a"]]
    fu = FeatureUnion([("s", StandardScaler()), ("m", MaxAbsScaler())]).fit(df)
    p = _tmp()
    kernelflow.save(fu, p)
    equal(kernelflow.load(p).transform(df), fu.transform(df))
    kernelflow.save(make_pipeline(StandardScaler()), p)  # unfitted container: parameters only
    back = kernelflow.load(p)
    equal(back.fit_transform(df), make_pipeline(StandardScaler()).fit_transform(df))


@case("io/sklearn_foreign_steps_refused")
def _():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.preprocessing import StandardScaler as SkScaler

    import kernelflow
    from kernelflow.preprocessing import StandardScaler

    df = _sk_data()[["a"]]
    raises(TypeError, "StandardScaler cannot be saved", kernelflow.save, make_pipeline(SkScaler()).fit(df), _tmp())
    raises(TypeError, "FunctionTransformer with a function", kernelflow.save,
           make_pipeline(FunctionTransformer(np.log1p), StandardScaler()).fit(df), _tmp())
    raises(TypeError, "cannot be saved", kernelflow.save, object(), _tmp())


@case("io/sklearn_container_file_with_function_refused")
def _():
    from safetensors import safe_open
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    import kernelflow
    from kernelflow.preprocessing import StandardScaler

    df = _sk_data()[["a"]]
    p = _tmp()
    kernelflow.save(make_pipeline(FunctionTransformer(), StandardScaler()).fit(df), p)
    with safe_open(p, framework="numpy") as f:
        doc, tensors = json.loads(f.metadata()["kernelflow"]), {k: f.get_tensor(k) for k in f.keys()}
    step = doc["params"]["steps"][0]["__tuple__"][1]["__object__"]
    step["params"]["func"] = "os.system"
    raises(ValueError, "FunctionTransformer may only be the identity", kernelflow.load, _write(doc, tensors))
    doc["params"]["steps"][0]["__tuple__"][1]["__object__"]["params"]["func"] = None
    doc["attrs"]["_final_estimator"] = 1  # a property of Pipeline: never settable from a file
    raises(ValueError, "not a fitted attribute", kernelflow.load, _write(doc, tensors))


@case("io/estimator_round_trips_exact")
def _():
    import kernelflow
    from kernelflow import preprocessing as P

    df = _sk_data()
    num = df[["a", "b"]]
    for est, X in ((P.StandardScaler(), num), (P.MinMaxScaler(feature_range=(-2, 3)), num), (P.MaxAbsScaler(), num),
                   (P.RobustScaler(), num), (P.SimpleImputer(strategy="median"), num), (P.OutlierClipper(method="iqr"), num),
                   (P.OneHotEncoder(sparse_output=False), df[["c", "d"]]), (P.OrdinalEncoder(), df[["c", "d"]])):
        est.fit(X)
        p = _tmp()
        kernelflow.save(est, p)
        equal(kernelflow.load(p).transform(X), est.transform(X), type(est).__name__)
