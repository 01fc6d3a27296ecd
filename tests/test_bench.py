"""Benchmark scripts: the CPU benchmark runs at a tiny size and writes the expected JSON, the
fused impute+scale formula equals scikit-learn, gpu_check.sh parses, GPU benchmark modules import."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from kernelflow.bench.preprocess import format_table, impute_scale_params, make_data, max_rel_diff

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path: str):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_benchmark_script_tiny(tmp_path):
    out = tmp_path / "cpu.json"
    mod = _load(os.path.join(ROOT, "benchmarks", "bench_cpu_preprocess.py"))
    assert mod.main(["--rows", "400", "--cols", "5", "--repeat", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "cpu_preprocess"
    assert {"device", "commit", "date"} <= set(doc["machine"])
    assert doc["fused_ok"] is True and doc["checks"]["kernelflow_fused_vs_float64"] <= 1e-5
    # the closed form fed sklearn's own fill values reproduces sklearn's float32 output
    assert doc["checks"]["fused_formula_with_sklearn_fill"] <= 1e-5
    impls = {r["impl"] for r in doc["rows"]}
    assert {"sklearn", "kernelflow_fused", "numpy"} <= impls
    assert "numba_parallel" in impls or "numba_parallel" in doc["skipped"]
    assert "kernelflow_estimators" in impls or "kernelflow_estimators" in doc["skipped"]
    for r in doc["rows"]:
        assert r["op"] in ("fit", "transform", "transform_out", "fit_transform")
        assert r["ms"] > 0 and r["gbps"] >= 0 and r["shape"] == [400, 5] and 0 <= r["frac_copy"]
        if r["op"] != "transform_out":  # sklearn has no reused-output transform
            assert r["speedup_vs_sklearn"] > 0
        assert r["max_rel_diff_vs_float64"] <= 1e-5
        if r["impl"] != "sklearn":
            assert "max_rel_diff_vs_sklearn" in r
    assert "compile" in doc["notes"] and doc["ceilings"]["copy_gbps"] > 0


def test_cpu_benchmark_script_cli(tmp_path):
    # the script as a process: argparse, exit code, file written
    out = tmp_path / "cpu.json"
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_cpu_preprocess.py"), "--rows", "200",
                        "--cols", "3", "--repeat", "1", "--impl", "sklearn", "--impl", "kernelflow_fused",
                        "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "kernelflow_fused" in r.stdout and out.exists()


@pytest.mark.parametrize("rows,cols,nan", [(1, 3, 0.0), (50, 4, 0.3), (3000, 7, 0.05)])
def test_fused_params_match_sklearn(rows, cols, nan):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from kernelflow.ops import column_stats, numeric_transform

    X = make_data(rows, cols, nan, seed=3)
    X[0] = np.maximum(X[0], 0)  # keep every column with at least one finite value
    X[:, 0] = 2.5  # a constant column: sklearn keeps scale 1
    X64 = X.astype(np.float64)
    pipe = make_pipeline(SimpleImputer(strategy="mean", keep_empty_features=True), StandardScaler())
    ref = pipe.fit_transform(X64)
    t = torch.from_numpy(X)
    got = numeric_transform(t, impute_scale_params(column_stats(t), rows), "float32").numpy()
    assert max_rel_diff(ref, got) <= 1e-5
    # with sklearn's float32 fill values the formula reproduces its float32 output
    pipe32 = make_pipeline(SimpleImputer(strategy="mean", keep_empty_features=True), StandardScaler())
    ref32 = pipe32.fit_transform(X)
    p = impute_scale_params(column_stats(t), rows, fill=pipe32[0].statistics_.astype(np.float32))
    assert max_rel_diff(ref32, numeric_transform(t, p, "float32").numpy()) <= 1e-5


def test_max_rel_diff():
    a = np.array([[1.0, np.nan], [100.0, 0.0]])
    assert max_rel_diff(a, a) == 0
    assert max_rel_diff(a, a + [[0, 0], [1, 0]]) == pytest.approx(0.01)
    assert max_rel_diff(a, np.zeros_like(a)) == float("inf")  # NaN positions differ
    assert max_rel_diff(a, a[:1]) == float("inf")


def test_format_table():
    s = format_table([{"op": "fit", "impl": "x", "ms": 1.5, "gbps": 2.0}, {"op": "transform", "impl": "y", "ms": 250.0}])
    lines = s.splitlines()
    assert lines[0].split() == ["op", "impl", "ms", "GB/s"] and len(lines) == 4


def test_gpu_check_script_parses():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    r = subprocess.run([bash, "-n", os.path.join(ROOT, "scripts", "gpu_check.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "benchmarks", "gpu_*.py"))),
                         ids=os.path.basename)
def test_gpu_benchmark_modules_import(path):
    mod = _load(path)
    assert callable(mod.main)


def test_gpu_benchmark_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("has CUDA: exercised by scripts/gpu_check.sh")
    mod = _load(os.path.join(ROOT, "benchmarks", "gpu_preprocess.py"))
    assert mod.main(str(tmp_path / "g.json")) == 0


def test_sanitize_driver_runs_on_cpu(capsys):
    mod = _load(os.path.join(ROOT, "scripts", "sanitize_kernels.py"))
    assert mod.main(["--device", "cpu", "--backend", "cpu"]) == 0
    assert "0 failures" in capsys.readouterr().out


def test_record_gpu_results(tmp_path):
    src, dest = tmp_path / "out", tmp_path / "results"
    src.mkdir()
    (src / "summary.json").write_text(json.dumps({"device": "NVIDIA H100 80GB HBM3", "commit": "abc1234",
                                                   "date": "2026-01-02T03:04:05+00:00", "steps": []}))
    (src / "gpu_preprocess.json").write_text(json.dumps({"benchmark": "gpu_preprocess", "rows": []}))
    (src / "gpu_check.log").write_text("log")
    mod = _load(os.path.join(ROOT, "scripts", "record_gpu_results.py"))
    assert mod.main([str(src), "--dest", str(dest)]) == 0
    names = sorted(os.listdir(dest))
    assert names == ["gpu_check_h100-80gb-hbm3_abc1234_2026-01-02.json",
                     "gpu_preprocess_h100-80gb-hbm3_abc1234_2026-01-02.json"]
    doc = json.loads((dest / names[1]).read_text())
    assert doc["recorded"] == {"device": "NVIDIA H100 80GB HBM3", "commit": "abc1234", "date": "2026-01-02",
                               "source": "gpu_preprocess.json"}


def test_gpu_harness_on_cpu():
    # the GPU benchmark's code path (checks, rotation, records) on the CPU backend at a tiny size
    from kernelflow.bench.preprocess import run_gpu

    res = run_gpu(((300, 5), (1, 3)), repeat=1, device="cpu", compile=False)
    assert res["failures"] == []
    ops = {(r["op"], r["impl"]) for r in res["rows"]}
    assert ("column_stats", "kernelflow_cpu") in ops and ("numeric_transform_bfloat16", "torch_eager") in ops
    assert all(r["correct"] for r in res["rows"])


@pytest.fixture
def fake_estimators(monkeypatch):
    """A stand-in kernelflow.preprocessing (sklearn's estimators taking backend=) when the real
    one is not importable, so the estimator code paths run either way."""
    try:
        import kernelflow.preprocessing  # noqa: F401

        return
    except ImportError:
        pass
    import types

    from sklearn import impute, preprocessing

    class SimpleImputer(impute.SimpleImputer):
        def __init__(self, *, strategy="mean", backend="auto"):
            super().__init__(strategy=strategy)
            self.backend = backend

    class StandardScaler(preprocessing.StandardScaler):
        def __init__(self, *, backend="auto"):
            super().__init__()
            self.backend = backend

    mod = types.ModuleType("kernelflow.preprocessing")
    mod.SimpleImputer, mod.StandardScaler = SimpleImputer, StandardScaler
    monkeypatch.setitem(sys.modules, "kernelflow.preprocessing", mod)


def test_estimators_path(fake_estimators):
    from kernelflow.bench.preprocess import run_cpu

    res = run_cpu(500, 4, 0.1, repeat=1, impls=["sklearn", "kernelflow_estimators"])
    assert "kernelflow_estimators" not in res["skipped"]
    assert res["checks"]["kernelflow_estimators_vs_float64"] <= 1e-5


def test_int8_suite_tiny(tmp_path):
    """The int8 suite at a tiny size: every implementation timed, W8A8 exact, JSON rows written."""
    from kernelflow import cli

    out = tmp_path / "int8.json"
    assert cli.main(["bench", "--suite", "int8", "--int8-m", "1", "9", "--int8-k", "64", "--repeat", "1",
                     "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    impls = {r["impl"] for r in doc["rows"]}
    assert {"kernelflow_w8a8", "kernelflow_weight_only", "torch_fp32"} <= impls
    w8 = [r for r in doc["rows"] if r["impl"] == "kernelflow_w8a8"]
    assert len(w8) == 2 and all(r["exact_vs_integer_reference"] and r["path"] for r in w8)
    assert doc["ceilings"]["fp32_matmul_gflops"] > 0


def test_int8_benchmark_script_tiny(tmp_path):
    mod = _load(os.path.join(ROOT, "benchmarks", "bench_int8_linear_cpu.py"))
    out = tmp_path / "i8.json"
    assert mod.main([str(out), "--m", "1", "--k", "32", "--repeat", "1"]) == 0
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "int8_linear_cpu" and "shared" in doc["notes"]
    assert {r["forced_path"] for r in doc["rows"]}
