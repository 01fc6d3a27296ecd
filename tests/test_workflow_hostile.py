"""kernelflow run on awkward tables: all-missing and constant columns, odd column names, boolean
and numeric-coded labels, missing targets, huge targets, infinities and empty files."""

from __future__ import annotations

import json

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("rich")
pytest.importorskip("matplotlib")

from kernelflow import cli  # noqa: E402
from kernelflow.workflow import Workflow  # noqa: E402

TINY = {"teacher": {"hidden": [8], "epochs": 2, "batch_size": 64}, "student": {"hidden": [4], "epochs": 2, "batch_size": 64},
        "quantize": {"calibration_rows": 64}, "evaluate": {"repeats": 2, "throughput_batch": 64},
        "baselines": {"models": ["linear"], "max_iter": 50}, "export": {"parity_rows": 64}}


def _table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x 1 (cm)": rng.normal(size=n),  # spaces and brackets in a name
        "überall": rng.normal(5, 3, size=n),  # non-ASCII name
        "all_nan": np.full(n, np.nan),
        "constant": np.full(n, 7.0),
        "big": rng.normal(size=n) * 1e12,
        "one_level": ["only"] * n,
        "city": rng.choice(["Oslo", "Lima", None], size=n),
    })
    df["flag"] = (df["x 1 (cm)"] + (df["city"] == "Oslo")) > 0.2
    return df


def _run(tmp_path, df, target, **over):
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    cfg = {"output_dir": str(tmp_path / "runs"), "data": {"path": str(path), "target": target, **over}, **TINY}
    return Workflow(cfg, progress=False).run()


def test_awkward_columns_and_boolean_labels(tmp_path):
    res = _run(tmp_path, _table(), "flag")
    assert res.status == "complete" and res.report["task"] == "classification"
    assert res.report["classes"] == [False, True]
    st = {s["name"]: s["status"] for s in res.report["stages"]}
    assert all(v in ("ok", "off") for v in st.values()), st
    for k in ("teacher", "student_int8", "onnx"):
        m = res.metrics[k]
        assert all(np.isfinite(v) for v in m.values()), (k, m)


def test_missing_and_huge_regression_targets(tmp_path):
    df = _table()
    df["y"] = df["überall"] * 1e9 + 3e10  # huge: trained standardized, reported in the target's units
    df.loc[::10, "y"] = np.nan
    res = _run(tmp_path, df, "y")
    assert res.status == "complete" and res.report["task"] == "regression"
    assert res.report["data"]["rows_without_target"] == 30
    m = res.metrics["teacher"]
    assert np.isfinite(m["rmse"]) and m["rmse"] < 3e9 * 2 and m["r2"] > 0  # better than the mean predictor
    assert abs(res.metrics["onnx"]["rmse"] - res.metrics["student_int8"]["rmse"]) <= 1e-3 * m["rmse"]


def test_numeric_coded_classes_and_explicit_task(tmp_path):
    df = _table()
    df["grade"] = np.where(df["flag"], 3, 1)
    res = _run(tmp_path, df.drop(columns=["flag"]), "grade")
    assert res.report["task"] == "classification" and res.report["classes"] == [1, 3]
    res2 = _run(tmp_path, df.drop(columns=["flag"]), "grade", task="regression")
    assert res2.report["task"] == "regression"


@pytest.mark.parametrize("case", ["inf", "empty", "rare_class", "no_features", "unknown_drop"])
def test_hostile_data_errors(tmp_path, capsys, case):
    df = _table()
    target, extra = "flag", ""
    if case == "inf":
        df.loc[5, "big"] = np.inf
        expect = "'big' holds infinite values"
    elif case == "rare_class":
        df["flag"] = "a"
        df.loc[:1, "flag"] = "b"
        expect = "stratified"
    elif case == "no_features":
        df = df[["flag"]]
        expect = "no feature columns"
    elif case == "unknown_drop":
        extra, expect = 'drop_columns = ["nope"]\n', "'nope' is not in the table"
    path = tmp_path / "t.csv"
    if case == "empty":
        path.write_text("")
        expect = "could not be read"
    else:
        df.to_csv(path, index=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'output_dir = "{tmp_path / "runs"}"\n[data]\npath = "{path}"\ntarget = "{target}"\n{extra}')
    assert cli.main(["run", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert expect in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "runs").exists()


def test_failed_stage_leaves_a_failed_report(tmp_path, monkeypatch):
    from kernelflow.workflow import stages

    def broken(ctx):
        raise RuntimeError("disk full")

    monkeypatch.setattr(stages, "stage_baselines", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        _run(tmp_path, _table(), "flag")
    (d,) = list((tmp_path / "runs").iterdir())
    rep = json.loads((d / "report.json").read_text())
    assert rep["status"] == "failed" and "disk full" in rep["error"] and (d / "INCOMPLETE").exists()
    assert rep["results"]["teacher"]["metrics"]  # what ran before the failure is kept
