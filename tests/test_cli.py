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
    assert info["cpu"]["model"] and isinstance(info["cpu"]["isa_flags"], list)
    assert "code_paths" in info and "cpu_isa" in info


def test_run_quiet_on_a_csv_config(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("rich")
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(3, 2, size=n),
                       "city": rng.choice(["Oslo", "Lima", "Pune"], size=n)})
    df["label"] = np.where(df["a"] + (df["city"] == "Oslo") > 0.3, "yes", "no")
    df.loc[::7, "a"] = np.nan
    data = tmp_path / "t.parquet"
    df.to_parquet(data)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'output_dir = "{tmp_path / "runs"}"\n[data]\npath = "t.parquet"\ntarget = "label"\n'
                   "[teacher]\nhidden = [16]\nepochs = 2\nbatch_size = 64\n[student]\nhidden = [4]\nepochs = 2\n"
                   "batch_size = 64\n[baselines]\nmodels = [\"linear\"]\n[evaluate]\nrepeats = 2\n"
                   "throughput_batch = 64\n[export]\nenabled = false\n")
    assert cli.main(["run", str(cfg), "--quiet", "--seed", "3"]) == 0
    cap = capsys.readouterr()
    assert cap.out == ""
    (run,) = (tmp_path / "runs").iterdir()
    rep = json.loads((run / "report.json").read_text())
    assert rep["status"] == "complete" and rep["manifest"]["seed"] == 3 and rep["classes"] == ["no", "yes"]
    assert {s["name"]: s["status"] for s in rep["stages"]}["export"] == "off"


def test_run_bad_config(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[teacher\nepochs = 2\n")
    assert cli.main(["run", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    bad.write_text("sed = 1\n")
    assert cli.main(["run", str(bad)]) == 2
    assert "did you mean 'seed'" in capsys.readouterr().err
    assert cli.main(["run", "--device", "tpu", str(bad)]) == 2


def test_bad_arguments():
    with pytest.raises(SystemExit):
        cli.main(["run", "--seed", "x"])
    with pytest.raises(SystemExit):
        cli.main([])


def test_bench_tiny(tmp_path, capsys):
    out_path = tmp_path / "bench.json"
    rc = cli.main(["bench", "--suite", "preprocess", "--rows", "300", "--cols", "3", "--repeat", "1", "--no-gpu",
                   "--quick", "--no-progress", "--impl", "sklearn", "--impl", "kernelflow_fused", "--impl", "numpy",
                   "--out", str(out_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "kernelflow_fused" in out and "x best peer" in out and "ceilings (best / worst before a suite): copy" in out
    doc = json.loads(out_path.read_text())
    impls = {r["impl"] for r in doc["rows"]}
    assert impls == {"sklearn", "kernelflow_fused", "numpy"}
    assert {r["op"] for r in doc["rows"]} == {"fit", "transform", "transform_out", "fit_transform"}
    assert all(r["shape"] == [300, 3] for r in doc["rows"])


def test_bench_bad_arguments(capsys):
    for argv in (["bench", "--suite", "nope"], ["bench", "--rows", "0"], ["bench", "--norm-hidden", "64", "0"],
                 ["bench", "--threads", "0"], ["bench", "--nan", "1.5"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
    assert cli.main(["bench", "--quick", "--suite", "preprocess", "--impl", "bogus", "--no-progress"]) == 1
    assert "unknown ['bogus']" in capsys.readouterr().out


def test_info_names_code_paths(capsys):
    import kernelflow
    from kernelflow._ext import ext

    C = ext()
    if C is None:
        pytest.skip("kernelflow._C not built")
    info = kernelflow.build_info()
    assert info["cpu_isa"] == C.cpu_isa() and info["cpu_isa"] in ("portable", "avx2", "avx512")
    assert info["cpu_isa_detected"] == C.cpu_isa_detected()
    families = set(C.build_info()["families"]) - {"cpu_isa"}
    assert set(info["code_paths"]) == families
    assert info["code_paths"]["int8_gemm"] == C.int8_cpu_path()
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "code_paths:" in out and "cpu_isa" in out
    for fam in families:
        assert fam in out
    # a forced level shows in every family that has no path of its own
    own = {f for f in families if hasattr(C, f"{f}_cpu_path") or hasattr(C, f"{f.split('_')[0]}_cpu_path")}
    before = C.cpu_isa()
    try:
        C.set_cpu_isa("portable")
        forced = kernelflow.build_info()
        assert forced["cpu_isa"] == "portable"
        for fam in families - own:
            assert forced["code_paths"][fam] == "portable", fam
    finally:  # back to what the environment asked for
        C.set_cpu_isa(os.environ.get("KERNELFLOW_CPU_ISA") or "auto")
    assert kernelflow.build_info()["cpu_isa"] == before


def test_python_dash_m():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "kernelflow", "info", "--json"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"]
