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
    assert cli.main(["bench", "--quick", "--no-progress", "--suite", "int8", "--int8-m", "1", "9", "--int8-k", "64",
                     "--repeat", "1", "--out", str(out)]) == 0
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


# ---------------------------------------------------------------------------------------------
# kernelflow bench: every suite at tiny sizes, the JSON schema, ratios, ceilings and plots

from kernelflow.bench.suites import SUITES  # noqa: E402

ROW_KEYS = {"suite", "op", "impl", "shape", "ms", "threads"}


def _strict_json(path):
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(path.read_text(), parse_constant=bad)


def _bench(tmp_path, *argv):
    from kernelflow import cli

    out, plots = tmp_path / "bench.json", tmp_path / "plots"
    rc = cli.main(["bench", "--quick", "--no-gpu", "--no-progress", "--out", str(out), "--plot", str(plots), *argv])
    return rc, (_strict_json(out) if out.exists() else None), plots


@pytest.mark.parametrize("name", SUITES)
def test_suite_quick(tmp_path, capsys, name):
    rc, doc, plots = _bench(tmp_path, "--suite", name)
    text = capsys.readouterr().out
    assert rc == 0, text
    assert doc["benchmark"] == "kernelflow_bench" and doc["schema"] == 1 and doc["suites_run"] == [name]
    m = doc["machine"]
    assert {"cpu_model", "isa_flags", "commit", "date", "load_average_before", "threads", "code_paths"} <= set(m)
    assert doc["ceilings"]["copy_gbps"] >= doc["ceilings"]["copy_gbps_min"] > 0
    assert doc["ceilings"]["fp32_matmul_gflops"] > 0
    assert doc["suites"][name]["ceilings"]["copy_gbps"] > 0  # measured again before the suite
    assert doc["failures"] == [] and doc["suites"][name]["failures"] == []
    rows = doc["rows"]
    assert rows and all(ROW_KEYS <= set(r) and r["suite"] == name and r["ms"] > 0 for r in rows)
    for r in rows:
        assert ("gbps" in r and "frac_copy" in r) or ("gops" in r and "frac_fp32_matmul" in r), r
    kf = [r for r in rows if r["impl"].startswith("kernelflow")]
    peers = {r["impl"] for r in rows} - {r["impl"] for r in kf}
    assert kf and peers
    for r in kf:
        assert isinstance(r["path"], str) and r["path"], r  # the CPU code path that ran
        if r["op"] != "transform_out":  # the reused-output ops have no peer in some suites
            assert r["best_peer"] in peers and r["speedup_vs_best_peer"] > 0
            assert all(f"speedup_vs_{p['impl']}" in r for p in rows
                       if p["op"] == r["op"] and p["shape"] == r["shape"] and p["impl"] in peers)
    for t in doc["targets"]:  # read off the rows, never asserted (timings)
        assert t["suite"] == name and {"target", "shape", "key", "value", "threshold", "met"} <= set(t)
        assert t["met"] in (True, False) and isinstance(t["value"], float)
    if name != "distill":  # every other suite has a target
        assert doc["targets"] and "targets (this machine" in text
    png = plots / f"bench_{name}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert name in text and "x best peer" in text and "ceilings (best / worst before a suite): copy" in text


def test_compile_peer(tmp_path):
    """torch.compile as a peer: compiled in the warm-up, timed and checked like the others."""
    rc, doc, _ = _bench(tmp_path, "--suite", "distill", "--compile", "--distill-rows", "16", "--distill-classes", "40")
    assert rc == 0
    (kf,) = [r for r in doc["rows"] if r["impl"] == "kernelflow_cpu"]
    assert {"speedup_vs_torch_eager", "speedup_vs_torch_compile"} <= set(kf) and kf["shape"] == [16, 40]
    (tc,) = [r for r in doc["rows"] if r["impl"] == "torch_compile"]
    assert tc["max_rel_diff_vs_float64"] <= 1e-4


def test_wrong_kernel_fails_the_run(tmp_path, monkeypatch, capsys):
    """A kernel that returns wrong numbers makes the run exit 1 and says which."""
    import kernelflow.ops.quantile as q

    real = q.column_quantiles
    monkeypatch.setattr(q, "column_quantiles", lambda x, qs, backend=None: real(x, qs, backend=backend) + 1e-3)
    rc, doc, _ = _bench(tmp_path, "--suite", "quantile")
    assert rc == 1 and "differs from numpy.nanpercentile" in doc["failures"][0]
    assert "FAIL:" in capsys.readouterr().out


def test_broken_suite_is_reported_and_others_run(tmp_path, monkeypatch):
    from kernelflow.bench.suites import distill

    def boom(cfg, progress):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(distill, "run", boom)
    rc, doc, _ = _bench(tmp_path, "--suite", "distill", "--suite", "quantile")
    assert rc == 1 and doc["suites_run"] == ["distill", "quantile"]
    assert "distill suite raised RuntimeError: kernel exploded" in doc["failures"][0]
    assert "Traceback" in doc["suites"]["distill"]["traceback"]
    assert {r["suite"] for r in doc["rows"]} == {"quantile"}


def test_threads_and_sizes_are_applied(tmp_path):
    before = torch.get_num_threads()
    try:
        rc, doc, _ = _bench(tmp_path, "--suite", "norm", "--threads", "1", "--norm-rows", "8", "--norm-hidden", "48",
                            "--repeat", "2")
        assert rc == 0 and doc["machine"]["threads"] == 1 and torch.get_num_threads() == 1
        assert {r["threads"] for r in doc["rows"]} == {1} and {tuple(r["shape"]) for r in doc["rows"]} == {(8, 48)}
        assert doc["config"]["repeat"] == 2 and doc["config"]["quick"] is True
    finally:
        torch.set_num_threads(before)


def test_annotate_ratios_and_fractions():
    from kernelflow.bench.runner import annotate

    rows = [{"suite": "s", "op": "a", "impl": "kernelflow_cpu", "shape": [4], "ms": 2.0, "gbps": 10.0},
            {"suite": "s", "op": "a", "impl": "numpy", "shape": [4], "ms": 4.0, "gbps": 5.0},
            {"suite": "s", "op": "a", "impl": "sklearn", "shape": [4], "ms": 8.0, "gbps": 2.5},
            {"suite": "s", "op": "a", "impl": "numpy", "shape": [8], "ms": 1.0},  # another group
            {"suite": "s", "op": "m", "impl": "kernelflow_x", "shape": [4], "ms": 1.0, "gops": 50.0},
            {"suite": "s", "op": "m", "impl": "kernelflow_x", "shape": [4], "ms": 1.0, "gops": 80.0,
             "frac_fp32_matmul": 0.5, "device": "cuda"}]
    annotate(rows, {"copy_gbps": 20.0, "fp32_matmul_gflops": 100.0})
    k = rows[0]
    assert k["frac_copy"] == 0.5 and rows[1]["frac_copy"] == 0.25
    assert k["speedup_vs_numpy"] == 2.0 and k["speedup_vs_sklearn"] == 4.0
    assert k["best_peer"] == "numpy" and k["speedup_vs_best_peer"] == 2.0
    assert "speedup_vs_numpy" not in rows[1]  # peers carry no ratios
    assert rows[4]["frac_fp32_matmul"] == 0.5 and "best_peer" not in rows[4]  # no peer in its group
    assert rows[5]["frac_fp32_matmul"] == 0.5  # a GPU row keeps the fraction of its own ceiling


def test_json_is_strict_and_formats_are_consistent(tmp_path):
    from kernelflow.bench.report import cell, jsonable, write_json

    doc = {"a": float("inf"), "b": np.float32(1.5), "c": np.arange(3), "d": (np.bool_(True), float("nan"))}
    p = write_json(doc, str(tmp_path / "x" / "d.json"))
    assert json.loads(open(p).read()) == {"a": "inf", "b": 1.5, "c": [0, 1, 2], "d": [True, "nan"]}
    assert jsonable({"x": [float("-inf")]}) == {"x": ["-inf"]}
    assert (cell("ms", 12.3456), cell("gbps", 3.14159), cell("frac_copy", 0.456), cell("speedup_vs_x", 2.0),
            cell("max_rel_diff_vs_float64", 1.5e-7), cell("shape", [3, 4]), cell("ok", False)) == \
        ("12.35", "3.1", "46%", "2.00x", "1.5e-07", "3x4", "NO")


def test_ceilings_measure_real_rates():
    from kernelflow.bench.ceilings import cpu_copy_gbps, cpu_matmul_gflops

    c = cpu_copy_gbps(1 << 20, repeat=3)
    assert c["copy_gbps"] == max(c["copy_torch_gbps"], c["copy_numpy_gbps"]) > 0 and c["copy_bytes"] == 2 << 20
    assert cpu_matmul_gflops(64, repeat=3)["fp32_matmul_gflops"] > 0


def test_one_row_one_column_everywhere(tmp_path):
    """The smallest sizes every suite accepts: one row, one column / class / feature, no NaN."""
    rc, doc, _ = _bench(tmp_path, "--rows", "1", "--cols", "1", "--nan", "0", "--table-rows", "2",
                        "--norm-rows", "1", "--norm-hidden", "1", "--distill-rows", "1", "--distill-classes", "1",
                        "--int8-m", "1", "--int8-k", "1", "--impl", "sklearn", "--impl", "kernelflow_fused",
                        "--impl", "numpy")
    assert rc == 0, doc["failures"]
    assert set(doc["suites_run"]) == set(SUITES) and {r["suite"] for r in doc["rows"]} == set(SUITES)
    shapes = {r["suite"]: r["shape"] for r in doc["rows"]}
    assert shapes["table"] == [2, 2] and shapes["preprocess"] == [1, 1] and shapes["quantile"] == [1, 1]


def test_bench_options_make_the_config():
    from kernelflow import cli
    from kernelflow.cli.bench import config

    ap = cli.build_parser()
    full = config(ap.parse_args(["bench"]))
    assert (full.rows, full.cols, full.repeat, full.compile, full.quick) == (1_000_000, 32, 5, True, False)
    assert (full.norm_hidden, full.int8_m, full.int8_k, full.table_rows) == ((1024, 4096), (1, 64, 1024), 4096, None)
    quick = config(ap.parse_args(["bench", "--quick"]))
    assert quick.quick and not quick.compile and quick.rows < 10_000 and quick.repeat == 1
    mixed = config(ap.parse_args(["bench", "--quick", "--compile", "--rows", "77", "--norm-hidden", "8", "16",
                                  "--threads", "1", "--no-gpu"]))
    assert mixed.compile and mixed.rows == 77 and mixed.norm_hidden == (8, 16) and mixed.threads == 1
    assert not mixed.gpu and mixed.cols == quick.cols
    assert not config(ap.parse_args(["bench", "--no-compile"])).compile
