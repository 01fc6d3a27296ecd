"""TensorRT engines from exported graphs (fp32, fp16, int8 QDQ), checked against the PyTorch module.

TensorRT cannot be installed on the CI machines (its libraries are not on the package registry
they use) and needs an NVIDIA GPU: those tests skip with that reason there and run in
scripts/gpu_check.sh where ``import tensorrt`` works."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import kernelflow  # noqa: E402
from kernelflow.deploy import TensorRTRunner, build_engine, export_onnx, tensorrt_version  # noqa: E402


def _tensorrt_usable() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except Exception as e:  # noqa: BLE001 - a missing wheel or libraries that fail to load
        return f"TensorRT is not importable ({type(e).__name__}); its libraries are not on this machine's registry"
    if not torch.cuda.is_available():
        return "TensorRT needs a CUDA device"
    return None


WHY = _tensorrt_usable()
needs_trt = pytest.mark.skipif(WHY is not None, reason=WHY or "")


def test_without_tensorrt_the_errors_say_why(tmp_path):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    assert tensorrt_version() is None
    assert kernelflow.build_info()["tensorrt"] is None
    with pytest.raises(RuntimeError, match="TensorRT is not importable"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.plan")
    with pytest.raises(RuntimeError, match="TensorRT is not importable"):
        TensorRTRunner(tmp_path / "m.plan")


@pytest.fixture(scope="module")
def pipeline():
    df = pytest.importorskip("palmerpenguins").load_penguins().drop(columns=["species"])
    pre = kernelflow.Preprocessor(add_indicator=True, nonlinear="yeo-johnson").fit(df)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(pre.n_features_out_, 64), kernelflow.nn.LayerNorm(64),
                                torch.nn.ReLU(), torch.nn.Linear(64, 3)).eval()
    inp = pre.inputs(df)
    with torch.no_grad():
        X = pre.to_module()(*inp)
        ref = model(X).numpy()
    return df, pre, model, inp, X, ref


@needs_trt
@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["float32", "float16", "int8"])
def test_engine_matches_the_module(tmp_path, pipeline, kind):
    df, pre, model, inp, X, ref = pipeline
    m, tol = model, 1e-4
    if kind == "int8":
        cal = [X[i:i + 64] for i in range(0, len(X), 64)]
        m, _ = kernelflow.quantize(model, mode="w8a8", calibration=cal, static=True)
        with torch.no_grad():
            ref_q = m(X).numpy()
        tol = 3 * np.abs(ref_q - ref).max() / max(1.0, np.abs(ref).max())  # the quantized model's own error
    elif kind == "float16":
        tol = 2e-2
    path = export_onnx(m, tmp_path / f"{kind}.onnx", preprocessor=pre, dtype="float16" if kind == "float16" else "float32")
    cache = tmp_path / "timing.cache"
    plan = build_engine(path, tmp_path / f"{kind}.plan", min_batch=1, opt_batch=256, max_batch=4096,
                        workspace_gb=2, timing_cache=cache)
    assert plan.stat().st_size > 0 and cache.stat().st_size > 0
    r = TensorRTRunner(plan)
    assert r.input_names == ["num", "cat"] and r.output_names == ["output"]
    out = r(inp.num.cuda(), inp.cat.cuda())
    torch.cuda.synchronize()
    got = out.float().cpu().numpy()
    assert np.abs(got - ref).max() <= tol * max(1.0, np.abs(ref).max())
    one = r(inp.num[:1].cuda(), inp.cat[:1].cuda()).float().cpu().numpy()  # the smallest batch of the profile
    np.testing.assert_allclose(one, got[:1], rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="profile"):
        r(torch.zeros(4097, inp.num.shape[1], device="cuda"), torch.zeros(4097, inp.cat.shape[1], dtype=torch.int64,
                                                                        device="cuda"))
    # the timing cache makes the second build reuse the first one's measurements
    build_engine(path, tmp_path / f"{kind}-2.plan", min_batch=1, opt_batch=256, max_batch=4096, workspace_gb=2,
                 timing_cache=cache)


def test_build_engine_arguments(tmp_path):
    with pytest.raises(ValueError, match="min_batch <= opt_batch"):
        build_engine(tmp_path / "none.onnx", tmp_path / "x.plan", min_batch=8, opt_batch=4, max_batch=16)
    with pytest.raises(TypeError, match="ints"):
        build_engine(tmp_path / "none.onnx", tmp_path / "x.plan", min_batch=1.5)
    with pytest.raises(ValueError, match="workspace_gb"):
        build_engine(tmp_path / "none.onnx", tmp_path / "x.plan", workspace_gb=0)
