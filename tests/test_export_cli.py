"""``kernelflow export``: bundle / preprocessor (+ .pt2 or .onnx model) in, one ONNX graph out,
with a summary; an engine where TensorRT works, a clear error where it does not."""

from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import kernelflow  # noqa: E402
from kernelflow.cli import main  # noqa: E402
from kernelflow.deploy import OnnxRunner, save_bundle  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    df = pytest.importorskip("palmerpenguins").load_penguins().drop(columns=["species"])
    pre = kernelflow.Preprocessor(add_indicator=True).fit(df)
    kernelflow.save(pre, d / "pre.safetensors")
    W = pre.n_features_out_
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(W, 8), kernelflow.nn.LayerNorm(8), torch.nn.Linear(8, 2)).eval()
    ep = torch.export.export(m, (torch.randn(4, W),), dynamic_shapes=({0: torch.export.Dim("N")},))
    torch.export.save(ep, d / "model.pt2")
    lin = torch.nn.Linear(W, 2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(lin, (torch.randn(4, W),), dynamo=True, opset_version=18,
                                 dynamic_shapes=({0: torch.export.Dim("N")},))
    prog.save(str(d / "lin.onnx"))
    save_bundle(d / "bundle", pre, m)
    with torch.no_grad():
        X = pre.to_module()(*pre.inputs(df))
        refs = {"m": m(X).numpy(), "lin": lin(X).numpy()}
    return d, df, pre, refs


def test_bundle_summary(files, capsys):
    d, *_ = files
    assert main(["export", str(d / "bundle")]) == 0
    out = capsys.readouterr().out
    assert "input  num" in out and "input  cat" in out and "output output" in out
    assert "LayerNormalization 1" in out and "parameters" in out
    assert main(["export", str(d / "bundle"), "-o", str(d / "copy.onnx"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(d / "copy.onnx") and info["outputs"][0]["shape"] == ["N", 2]
    assert (d / "copy.onnx").read_bytes() == (d / "bundle" / "model.onnx").read_bytes()


@pytest.mark.parametrize("model,ref", [(None, None), ("model.pt2", "m"), ("lin.onnx", "lin")])
def test_preprocessor_and_model_files(files, capsys, model, ref):
    d, df, pre, refs = files
    out = d / f"out-{model}.onnx"
    args = ["export", str(d / "pre.safetensors"), "-o", str(out), "--json"] + (["--model", str(d / model)] if model else [])
    assert main(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in info["inputs"]] == ["num", "cat"]
    got = OnnxRunner(out, preprocessor=pre).predict(df)
    want = pre.transform(df) if ref is None else refs[ref]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_errors(files, capsys):
    d, *_ = files
    assert main(["export", str(d / "nothing-here")]) == 2
    assert "neither a bundle" in capsys.readouterr().err
    assert main(["export", str(d / "pre.safetensors"), "--model", str(d / "pre.safetensors")]) == 2
    assert ".pt2" in capsys.readouterr().err
    assert main(["export", str(d / "bundle"), "--model", str(d / "model.pt2")]) == 2
    with pytest.raises(SystemExit):
        main(["export", str(d / "bundle"), "--min-batch", "9", "--max-batch", "4"])
    if importlib.util.find_spec("tensorrt") is None:
        assert main(["export", str(d / "bundle"), "--engine", str(d / "e.plan")]) == 2
        assert "TensorRT is not importable" in capsys.readouterr().err
