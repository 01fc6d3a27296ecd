"""kernelflow run / Workflow: the whole workflow on small real tables (palmerpenguins), every
artifact checked, config and data errors before any work, interrupted runs marked incomplete."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("rich")
pytest.importorskip("matplotlib")
palmerpenguins = pytest.importorskip("palmerpenguins")

from kernelflow import cli  # noqa: E402
from kernelflow.workflow import ConfigError, Workflow, WorkflowConfig, config_to_toml, load_config  # noqa: E402
from kernelflow.workflow import report as R  # noqa: E402

FAST = """
output_dir = "{out}"
name = "{name}"
[data]
path = "{path}"
target = "{target}"
task = "{task}"
[teacher]
hidden = [32, 32]
epochs = 3
batch_size = 32
patience = 3
[student]
hidden = [8]
epochs = 3
batch_size = 32
patience = 3
[quantize]
calibration_rows = 128
[evaluate]
repeats = 3
throughput_batch = 64
[baselines]
max_iter = 20
[export]
parity_rows = 64
"""


@pytest.fixture(scope="module")
def penguins_csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "penguins.csv"
    palmerpenguins.load_penguins().to_csv(p, index=False)
    return p


def _config(tmp_path, penguins_csv, task="classification", target="species", name="t", extra=""):
    text = FAST.format(out=tmp_path / "runs", name=name, path=penguins_csv, target=target, task=task) + extra
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


def _check_run(res, task):
    d = res.run_dir
    assert res.status == "complete"
    assert not os.path.exists(os.path.join(d, "INCOMPLETE"))
    rep = json.loads(open(os.path.join(d, "report.json")).read())
    assert rep["status"] == "complete" and rep["task"] == task
    man = json.loads(open(os.path.join(d, "manifest.json")).read())
    assert len(man["data_sha256"]) == 64 and man["seed"] == 0 and man["versions"]["torch"]
    assert load_config(os.path.join(d, "config.toml")).to_dict() == man["config"]
    names = R.metric_names(task)
    for stage in ("teacher", "student", "student_alone", "student_int8"):
        m = rep["results"][stage]
        assert set(names) <= set(m["metrics"]), stage
        assert m["latency_ms"] > 0 and m["throughput_rows_s"] > 0 and m["parameters"] > 0 and m["size_bytes"] > 0
    for b in ("hist_gradient_boosting", "linear"):
        assert set(names) <= set(rep["baselines"][b]["metrics"])
    stages = {s["name"]: s for s in rep["stages"]}
    for s in ("load", "split", "preprocess", "teacher", "student", "quantize", "evaluate", "baselines"):
        assert stages[s]["status"] == "ok", (s, stages[s])
        assert stages[s]["seconds"] >= 0
    # export / repository: either done and checked, or honestly skipped with a reason
    exp = stages["export"]
    if exp["status"] == "ok":
        det = exp["detail"]
        assert det["parity_ok"] and det["max_abs_diff"] <= det["tolerance"]
        assert os.path.isfile(det["onnx"]) and "onnx" in rep["results"]
        from kernelflow.deploy import load_bundle

        load_bundle(det["bundle"])
        repo = stages["repository"]
        import importlib.util

        if importlib.util.find_spec("kernelflow.deploy.triton_repo") is not None:
            assert repo["status"] == "ok" and repo["detail"]["files"], repo
            assert any(f.endswith("config.pbtxt") for f in repo["detail"]["files"])
        else:
            assert repo["status"].startswith("skipped: ")
    else:
        assert exp["status"].startswith("skipped: ") and len(exp["status"]) > 12
        assert stages["repository"]["status"].startswith("skipped: ")
    # html shows every plot, and the plots exist
    html = open(os.path.join(d, "report.html")).read()
    assert rep["plots"] and {"learning_curves", "metrics_by_stage", "latency_size_by_stage"} <= set(rep["plots"])
    for rel in rep["plots"].values():
        assert f'src="{rel}"' in html
        with open(os.path.join(d, rel), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # the summary table is built from the same numbers as report.json
    lines = R.summary_lines(rep)
    assert lines[0][1:1 + len(names)] == list(names)
    first = rep["results"]["teacher"]["metrics"]
    assert lines[1][1] == f"{first[names[0]]:.4f}"
    return rep


def test_classification_end_to_end(tmp_path, penguins_csv, capsys):
    cfg = _config(tmp_path, penguins_csv)
    rc = cli.main(["run", str(cfg), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    rep_stdout = json.loads(out)
    rep = _check_run(type("R", (), {"run_dir": rep_stdout["run_dir"], "status": rep_stdout["status"]})(),
                     "classification")
    assert rep_stdout["results"] == rep["results"]  # --json prints what report.json holds
    assert rep["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    # penguin species are easy: the teacher and the gradient-boosting baseline both get them right
    assert rep["results"]["teacher"]["metrics"]["accuracy"] >= 0.9
    assert rep["baselines"]["hist_gradient_boosting"]["metrics"]["accuracy"] >= 0.9
    # int8 student within 1 point of the float student
    acc = rep["results"]["student"]["metrics"]["accuracy"]
    assert abs(rep["results"]["student_int8"]["metrics"]["accuracy"] - acc) <= 0.02


def test_regression_end_to_end(tmp_path, penguins_csv):
    cfg = _config(tmp_path, penguins_csv, task="auto", target="body_mass_g", name="reg",
                  extra="\n[preprocess]\nimpute = \"mean\"\n")
    res = Workflow.from_toml(cfg, progress=False).run()
    rep = _check_run(res, "regression")
    m = rep["results"]["teacher"]["metrics"]
    # body mass from flipper length, species and sex: a linear relation, R^2 well above 0
    assert m["r2"] > 0.5 and m["rmse"] > 0
    assert rep["baselines"]["linear"]["metrics"]["r2"] > 0.5
    rmse, rmse8 = rep["results"]["student"]["metrics"]["rmse"], rep["results"]["student_int8"]["metrics"]["rmse"]
    assert rmse8 <= rmse * 1.05


def test_same_seed_same_metrics(tmp_path, penguins_csv):
    cfg = _config(tmp_path, penguins_csv, name="repro")
    text = cfg.read_text().replace("[baselines]\nmax_iter = 20\n", "[baselines]\nmodels = []\n")
    cfg.write_text(text)
    a = Workflow.from_toml(cfg, progress=False).run()
    b = Workflow.from_toml(cfg, progress=False).run()
    assert a.run_dir != b.run_dir
    for k in ("teacher", "student", "student_int8"):
        assert a.report["results"][k]["metrics"] == b.report["results"][k]["metrics"], k
    assert a.report["manifest"]["data_sha256"] == b.report["manifest"]["data_sha256"]


def test_tune_and_folds(tmp_path, penguins_csv):
    extra = "\n[tune]\nenabled = true\ntrials = 4\nepochs = 2\nwidths = [8, 16]\nmax_depth = 2\ntemperatures = [2.0, 4.0]\n"
    cfg = _config(tmp_path, penguins_csv, name="tune", extra=extra)
    text = cfg.read_text().replace("[baselines]\nmax_iter = 20\n", "[baselines]\nmodels = []\n")
    text = text.replace("[teacher]\n", "[split]\nfolds = 3\n\n[teacher]\n")
    cfg.write_text(text)
    res = Workflow.from_toml(cfg, progress=False).run()
    assert res.status == "complete"
    tune = res.stage("tune")
    assert tune["status"] == "ok"
    det = tune["detail"]
    assert det["teacher_trials"] >= 1 and "lr" in det["teacher_best"] and "temperature" in det["student_best"]
    best = load_config(det["best_config"])
    assert not best.tune.enabled
    assert best.teacher.lr == det["teacher_best"]["lr"]
    assert all(w in (8, 16) for w in best.teacher.hidden)
    cv = res.stage("teacher")["detail"]["cross_validation"]
    assert cv["folds"] == 3 and len(cv["values"]) == 3 and 0 <= cv["mean"] <= 1


def _write(tmp_path, df, name="t.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


@pytest.mark.parametrize("case", ["unknown_key", "unknown_section", "bad_value", "missing_target", "constant_target",
                                  "too_few_rows", "non_numeric_regression", "bad_preprocess", "missing_file"])
def test_config_errors_exit_2_before_any_work(tmp_path, penguins_csv, capsys, case):
    runs = tmp_path / "runs"
    df = palmerpenguins.load_penguins()
    path, target, extra, task = penguins_csv, "species", "", "auto"
    if case == "unknown_key":
        extra, expect = "\n[split]\ntets = 0.2\n", "'split.test'"
    elif case == "unknown_section":
        extra, expect = "\n[techer]\nepochs = 2\n", "'teacher'"
    elif case == "bad_value":
        extra, expect = "\n[split]\ntest = 1.5\n", "split.test"
    elif case == "missing_target":
        target, expect = "specie", "'species'"
    elif case == "constant_target":
        d = df.assign(k="same")
        path, target, expect = _write(tmp_path, d), "k", "constant"
    elif case == "too_few_rows":
        path, expect = _write(tmp_path, df.sample(12, random_state=1)), "too few"
    elif case == "non_numeric_regression":
        task, expect = "regression", "non-numeric"
    elif case == "bad_preprocess":
        extra, expect = "\n[preprocess]\nscale = \"zscore\"\n", "scale"
    else:
        path, expect = tmp_path / "nope.csv", "does not exist"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'output_dir = "{runs}"\n[data]\npath = "{path}"\ntarget = "{target}"\ntask = "{task}"\n' + extra)
    assert cli.main(["run", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expect in err, err
    assert not runs.exists()  # nothing was created


def test_interrupted_run_is_marked_incomplete(tmp_path, penguins_csv, monkeypatch):
    from kernelflow.workflow import stages

    def boom(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "stage_student", boom)
    cfg = _config(tmp_path, penguins_csv, name="stop")
    with pytest.raises(KeyboardInterrupt):
        Workflow.from_toml(cfg, progress=False).run()
    (d,) = list((tmp_path / "runs").iterdir())
    assert (d / "INCOMPLETE").exists()
    rep = json.loads((d / "report.json").read_text())
    assert rep["status"] == "interrupted"
    assert {s["name"]: s["status"] for s in rep["stages"]}["student"] == "interrupted"
    assert not (d / "report.html").exists()


def test_config_round_trip_and_suggestions():
    cfg = WorkflowConfig()
    import tomllib

    from kernelflow.workflow.config import from_dict

    assert from_dict(tomllib.loads(config_to_toml(cfg))) == cfg
    with pytest.raises(ConfigError, match="did you mean 'teacher.epochs'"):
        from_dict({"teacher": {"epoch": 3}})
    with pytest.raises(ConfigError, match="did you mean 'preprocess.impute'"):
        from_dict({"preprocess": {"imputer": "mean"}})
    with pytest.raises(ConfigError, match="set by the workflow"):
        from_dict({"preprocess": {"device": "cuda"}})
    with pytest.raises(ConfigError, match="must be true or false"):
        from_dict({"student": {"enabled": 1}})
    with pytest.raises(ConfigError, match="baselines.models"):
        from_dict({"baselines": {"models": ["xgboost"]}})
    with pytest.raises(ConfigError, match="data.target is required"):
        from_dict({"data": {"path": "x.csv"}})
    with pytest.raises(TypeError):
        Workflow(42)


def test_default_dataset_is_real_and_embedded():
    from kernelflow.workflow.datasets import dataset_files, load_dataset

    try:
        files = dataset_files()
    except RuntimeError as e:
        pytest.skip(str(e))
    assert all(os.path.isfile(f) for f in files)
    df = load_dataset()
    assert len(df) == 336_776
    assert df.isna().any().sum() >= 5  # missing departure delays, weather and plane records
    assert {"carrier", "origin", "dest", "tailnum", "manufacturer"} <= set(df.select_dtypes(exclude="number").columns)
    assert set(df["status"].unique()) == {"delayed", "on_time"}
    assert 0.2 < (df["status"] == "delayed").mean() < 0.35
    assert np.isnan(df["dep_delay"].to_numpy()).sum() == 8255  # the cancelled flights


def test_serve_stage_serves_or_says_why(tmp_path, penguins_csv):
    """--serve: a real Triton server answering like ONNX Runtime, or 'skipped: <why>' where none is installed."""
    cfg = _config(tmp_path, penguins_csv, name="serve")
    text = cfg.read_text().replace("[baselines]\nmax_iter = 20\n", "[baselines]\nmodels = []\n")
    cfg.write_text(text + "\n[serve]\nserve = true\n")
    res = Workflow.from_toml(cfg, progress=False).run()
    try:
        st = res.stage("serve")
        from kernelflow.deploy.server import find_server

        if find_server() is None:
            assert st["status"].startswith("skipped: no Triton Inference Server found"), st
            assert res.server is None
        else:
            assert st["status"] == "ok" and st["detail"]["max_abs_diff_vs_onnxruntime"] <= 1e-4, st
            assert res.server is not None and res.server.proc.poll() is None
    finally:
        if res.server is not None:
            res.server.stop()
    assert res.status == "complete"


def test_example_config_lists_the_defaults():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = load_config(os.path.join(root, "examples", "workflow.toml"))
    assert cfg == WorkflowConfig()
