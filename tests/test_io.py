"""Saving and loading without pickle: round trips, and malformed or hostile files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

import kernelflow
from kernelflow.preprocessing import MaxAbsScaler, MinMaxScaler, SimpleImputer, StandardScaler


def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


@pytest.mark.parametrize("est", [StandardScaler(with_mean=False), MinMaxScaler(feature_range=(-1, 2), clip=True),
                                 MaxAbsScaler(), SimpleImputer(strategy="constant", fill_value=3.0)], ids=repr)
def test_round_trip(tmp_path, est):
    import pandas as pd

    X = pd.DataFrame(data(), columns=list("abcde"))
    est.fit(X)
    path = tmp_path / "est.safetensors"
    kernelflow.save(est, path)
    loaded = kernelflow.load(path)
    assert type(loaded) is type(est) and repr(loaded.get_params()) == repr(est.get_params())
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    assert list(loaded.get_feature_names_out()) == list("abcde")
    with open(path, "rb") as f:
        assert b"pickle" not in f.read()


def _write(path, doc, tensors=None):
    save_file(tensors or {"x": np.zeros(1)}, str(path), metadata={"kernelflow": json.dumps(doc)} if doc is not None else None)


def good_doc(tmp_path):
    StandardScaler().fit(data()).save(tmp_path / "ok.st")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "ok.st"), framework="numpy") as f:
        return json.loads(f.metadata()["kernelflow"]), {k: f.get_tensor(k) for k in f.keys()}


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.update(format="other"), "not a kernelflow file"),
    (lambda d: d.update(format_version=99), "format version"),
    (lambda d: d.update({"class": "os.system"}), "unknown class"),
    (lambda d: d.update({"class": "Pipeline"}), "unknown class"),
    (lambda d: d["params"].update(evil=1), "unknown parameters"),
    (lambda d: d["attrs"].update({"__class__": 1}), "not a fitted attribute"),
    (lambda d: d["attrs"].update(n_features_in_="five"), "inconsistent fitted state"),
    (lambda d: d.update(params=[1, 2]), "malformed"),
])
def test_hostile_or_malformed_metadata(tmp_path, mutate, match):
    doc, tensors = good_doc(tmp_path)
    mutate(doc)
    _write(tmp_path / "bad.st", doc, tensors)
    with pytest.raises(ValueError, match=match):
        kernelflow.load(tmp_path / "bad.st")


def test_not_a_safetensors_file(tmp_path):
    p = tmp_path / "junk.bin"
    p.write_bytes(b"\x80\x04\x95 definitely not safetensors")
    with pytest.raises(ValueError, match="not a readable kernelflow file"):
        kernelflow.load(p)
    _write(tmp_path / "nometa.st", None)
    with pytest.raises(ValueError, match="no kernelflow metadata"):
        kernelflow.load(tmp_path / "nometa.st")
    with pytest.raises(ValueError, match="not a readable"):
        kernelflow.load(tmp_path / "missing.st")


def test_unfitted_and_foreign_objects(tmp_path):
    from sklearn.exceptions import NotFittedError
    from sklearn.preprocessing import StandardScaler as SkScaler

    with pytest.raises(NotFittedError):
        StandardScaler().save(tmp_path / "x.st")
    with pytest.raises(TypeError, match="cannot be saved"):
        kernelflow.save(SkScaler().fit(data()), tmp_path / "x.st")


def test_load_in_a_fresh_process(tmp_path):
    """kernelflow.load finds the saved class without the caller importing its module first."""
    import subprocess
    import sys

    from kernelflow.preprocessing import StandardScaler

    path = tmp_path / "s.safetensors"
    kernelflow.save(StandardScaler().fit(np.array([[1.0, 2.0], [3.0, 5.0]])), path)
    code = f"import kernelflow; m = kernelflow.load({str(path)!r}); print(type(m).__name__, m.transform([[3.0, 5.0]]).tolist())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["StandardScaler", "[[1.0,", "1.0]]"]
