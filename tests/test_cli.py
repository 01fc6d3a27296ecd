"""The kernelflow command: every subcommand runs at tiny sizes and prints what it should."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kernelflow import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_info_table(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("version", "extension", "backends_cpu", "optional"):
        assert key in out


def test_info_json(capsys):
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] and "torch" in info["backends_cpu"]


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_run_synthetic(capsys, backend):
    assert cli.main(["run", "--rows", "2000", "--cols", "5", "--repeat", "1", "--backend", backend]) == 0
    out = capsys.readouterr().out
    assert "speedup:" in out and "check: OK" in out and "scikit-learn" in out


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_run_input_file(tmp_path, capsys, kind):
    pd = pytest.importorskip("pandas")
    if kind == "parquet":
        pytest.importorskip("pyarrow")
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(3, 2, size=50), "name": ["x"] * 50})
    df.loc[::7, "a"] = np.nan
    path = tmp_path / f"t.{kind}"
    df.to_csv(path, index=False) if kind == "csv" else df.to_parquet(path)
    assert cli.main(["run", "--input", str(path), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 numeric columns" in out and "check: OK" in out


def test_run_bad_input(tmp_path, capsys):
    assert cli.main(["run", "--input", str(tmp_path / "missing.csv")]) == 2
    assert "error" in capsys.readouterr().err
    bad = tmp_path / "t.xlsx"
    bad.write_text("x")
    assert cli.main(["run", "--input", str(bad)]) == 2


def test_bad_arguments():
    with pytest.raises(SystemExit):
        cli.main(["run", "--rows", "0"])
    with pytest.raises(SystemExit):
        cli.main(["run", "--nan", "1.5"])
    with pytest.raises(SystemExit):
        cli.main([])


def test_bench_tiny(tmp_path, capsys):
    out_path = tmp_path / "bench.json"
    rc = cli.main(["bench", "--rows", "300", "--cols", "3", "--repeat", "1", "--no-gpu",
                   "--impl", "sklearn", "--impl", "kernelflow_fused", "--impl", "numpy", "--out", str(out_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "kernelflow_fused" in out and "x sklearn" in out
    doc = json.loads(out_path.read_text())
    impls = {r["impl"] for r in doc["rows"]}
    assert impls == {"sklearn", "kernelflow_fused", "numpy"}
    assert {r["op"] for r in doc["rows"]} == {"fit", "transform", "fit_transform"}


def test_python_dash_m():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "kernelflow", "info", "--json"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"]
