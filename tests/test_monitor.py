"""kernelflow.monitor: the numpy statistics against kernelflow's fit kernels and float64
references, PSI / mean shift properties, DriftReference round trips, DriftMonitor chunked ==
one-shot on real data, shifted vs unshifted data, hostile inputs, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from kernelflow.monitor import DriftMonitor, DriftReference, DriftState, psi
from kernelflow.monitor import drift_stats as ds
from serving.helpers import penguins


def _hostile_matrix(rng, n=500, f=5):
    x = rng.normal(size=(n, f)) * 10 + 3
    x[rng.random((n, f)) < 0.1] = np.nan
    x[0, 0], x[1, 1], x[2, 2] = np.inf, -np.inf, 1e300
    x[3, 3] = 5e-324
    x[:, 4] = np.nan  # a column without a finite value
    return x


def test_column_stats_match_kernelflow_op_and_float64_reference():
    import torch

    from kernelflow import ops

    rng = np.random.default_rng(0)
    x = _hostile_matrix(rng)
    got = ds.column_stats(x)
    want = ops.column_stats(torch.from_numpy(x)).numpy()  # the fit kernel
    np.testing.assert_array_equal(got[[0, 1, 4, 5]], want[[0, 1, 4, 5]])
    ok = np.isfinite(want[3])  # column 2 holds 1e300: its M2 overflows float64 (inf here; the kernel gives NaN)
    np.testing.assert_allclose(got[2:4][:, ok], want[2:4][:, ok], rtol=1e-12)
    assert got[3, 2] == np.inf and got[2, 2] == want[2, 2]
    for j in (0, 1, 3):  # float64 reference by hand
        v = x[:, j][np.isfinite(x[:, j])]
        assert got[0, j] == v.size and got[1, j] == np.isnan(x[:, j]).sum()
        np.testing.assert_allclose([got[2, j], got[3, j]], [v.mean(), ((v - v.mean()) ** 2).sum()], rtol=1e-12)
    assert got[0, 4] == 0 and got[4, 4] == np.inf and got[5, 4] == -np.inf
    assert ds.column_stats(np.zeros((0, 3))).shape == (6, 3)


def test_merge_is_exact_in_chunks():
    rng = np.random.default_rng(1)
    x = _hostile_matrix(rng)
    whole = ds.column_stats(x)
    acc = ds.column_stats(x[:0])
    for lo in range(0, len(x), 37):
        acc = ds.merge_stats(acc, ds.column_stats(x[lo:lo + 37]))
    np.testing.assert_array_equal(acc[[0, 1, 4, 5]], whole[[0, 1, 4, 5]])
    np.testing.assert_allclose(acc[2:4], whole[2:4], rtol=1e-10)


def test_psi_properties():
    a = np.array([10, 20, 30, 40])
    assert psi(a, a) == 0.0 and psi(a, 3 * a) == pytest.approx(0.0, abs=1e-15)  # proportions, not counts
    assert psi(a, a[::-1]) > 0.25
    assert psi(a, [0, 0, 0, 100]) < math.inf  # empty bins are clipped, not infinite
    assert math.isnan(psi(a, [0, 0, 0, 0])) and math.isnan(psi([0, 0], [1, 1]))
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.1, 0.6, 0.3])
    assert psi(p, q) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    with pytest.raises(ValueError, match="same bins"):
        psi([1, 2], [1, 2, 3])


def test_bins_cover_every_finite_value():
    rng = np.random.default_rng(2)
    col = np.concatenate([rng.normal(size=1000), [np.nan, np.inf, -np.inf]])
    edges = ds.quantile_edges(col, 10)
    counts = ds.bin_counts(col, edges)
    assert counts.sum() == 1000 and len(counts) == len(edges) + 1
    assert np.all(np.abs(counts - 100) <= 2)  # deciles
    assert ds.quantile_edges(np.full(50, 3.0), 10).tolist() == [3.0]  # a constant column: one edge
    assert ds.quantile_edges(np.full(5, np.nan), 10).size == 0


def test_reference_roundtrip_and_checks(tmp_path):
    import kernelflow

    df, _, _ = penguins()
    pre = kernelflow.Preprocessor().fit(df)
    ref = DriftReference.fit(pre, df)
    assert ref.doc["rows"] == len(df) and {c["name"] for c in ref.doc["categorical"]} == {"island", "sex"}
    sex = next(c for c in ref.doc["categorical"] if c["name"] == "sex")
    assert sex["missing"] == df["sex"].isna().sum() and sum(sex["counts"]) == len(df)
    ref.save(tmp_path / "r.json")
    assert DriftReference.load(tmp_path / "r.json").doc == ref.doc
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="invalid JSON"):
        DriftReference.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="kernelflow-drift-reference"):
        DriftReference({"format": "x"})
    doc = ref.to_dict()
    doc["numeric"][0]["bin_counts"] = [1]
    with pytest.raises(ValueError, match="bin_counts"):
        DriftReference(doc)
    with pytest.raises(ValueError, match="bins must be"):
        DriftReference.fit(pre, df, bins=1)
    with pytest.raises(TypeError, match="fitted kernelflow.Preprocessor"):
        DriftMonitor(object())
    other = kernelflow.Preprocessor().fit(df.drop(columns=["year"]))
    with pytest.raises(ValueError, match="does not match"):
        DriftMonitor(other, ref)


def test_monitor_unshifted_is_quiet_and_shifted_moves():
    import kernelflow

    df, _, _ = penguins()
    pre = kernelflow.Preprocessor().fit(df)
    mon = DriftMonitor(pre, df)  # the training table itself as the reference
    for lo in range(0, len(df), 50):  # chunk by chunk
        mon.update(df.iloc[lo:lo + 50])
    rep = mon.report().set_index("column")
    assert list(rep.columns[:3]) == ["kind", "rows", "psi"] and (rep["rows"] == len(df)).all()
    assert np.all(np.abs(rep["psi"]) < 1e-12) and np.all(np.abs(rep.loc[rep.kind == "numeric", "mean_shift"]) < 1e-9)
    np.testing.assert_allclose(rep["missing_rate"], rep["reference_missing_rate"], atol=1e-15)
    one = DriftMonitor(pre, df).update(df).report().set_index("column")
    pd.testing.assert_frame_equal(rep, one, rtol=1e-10)  # chunked == one-shot

    shifted = df.copy()
    shifted["bill_depth_mm"] = shifted["bill_depth_mm"] - 2 * np.nanstd(df["bill_depth_mm"])
    shifted["island"] = "Biscoe"
    shifted.loc[:99, "sex"] = "unknown-sex"
    shifted.loc[100:, "flipper_length_mm"] = np.nan
    s = DriftMonitor(pre, df).update(shifted).report().set_index("column")
    assert s.loc["bill_depth_mm", "mean_shift"] == pytest.approx(-2.0, rel=1e-6)
    assert s.loc["bill_depth_mm", "psi"] > 1 and s.loc["island", "psi"] > 0.25
    assert s.loc["sex", "unknown_rate"] == pytest.approx(100 / len(df))
    assert s.loc["flipper_length_mm", "missing_rate"] == pytest.approx((len(df) - 100) / len(df), abs=1e-12) or \
        s.loc["flipper_length_mm", "missing_rate"] > 0.7
    assert abs(s.loc["year", "psi"]) < 1e-12  # untouched
    j = json.loads(DriftMonitor(pre, df).update(shifted).to_json())
    assert j["rows"] == len(df) and {c["column"] for c in j["columns"]} == set(s.index)
    assert all(c["mean_shift"] is None for c in j["columns"] if c["kind"] == "categorical")  # NaN -> null


def test_monitor_without_training_data_uses_fit_counts():
    import kernelflow

    df, _, _ = penguins()
    pre = kernelflow.Preprocessor().fit(df)
    rep = DriftMonitor(pre).update(df).report().set_index("column")
    assert np.all(np.abs(rep.loc[rep.kind == "categorical", "psi"]) < 1e-12)  # fit counts include imputed rows
    assert rep.loc[rep.kind == "numeric", "psi"].isna().all()  # needs the training data's bins


def test_monitor_hostile_batches():
    import kernelflow

    df, _, _ = penguins()
    pre = kernelflow.Preprocessor().fit(df)
    mon = DriftMonitor(pre, df)
    h = df.iloc[:10].copy()
    h["bill_length_mm"] = [np.inf, -np.inf, np.nan, 1e300, -1e300, 0, 5e-324, 1, 2, 3]
    mon.update(h)
    mon.update(df.iloc[:0])  # an empty batch adds nothing
    r = mon.report().set_index("column")
    assert r.loc["bill_length_mm", "rows"] == 10 and np.isfinite(r.loc["bill_length_mm", "psi"])
    with pytest.raises(ValueError, match="missing from X"):
        mon.update(df.drop(columns=["island"]))
    st = DriftState.from_dict(json.loads(json.dumps(mon.state.to_dict())))  # JSON round trip, then merge
    st.merge(mon.state)
    assert st.rows == 20
    with pytest.raises(ValueError, match="different columns"):
        st.merge(DriftState(["a"], [[]], [], []))


def test_cli_monitor(tmp_path, capsys):
    from kernelflow.cli import main
    from serving.helpers import make_bundle

    b, pre, df = make_bundle(str(tmp_path / "b"))
    shifted = df.copy()
    shifted["island"] = "Torgersen"
    shifted.to_parquet(tmp_path / "new.parquet")
    assert main(["monitor", b, str(tmp_path / "new.parquet"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    island = next(c for c in out["columns"] if c["column"] == "island")
    assert island["psi"] > 0.25 and out["rows"] == len(df)
    assert main(["monitor", b, str(tmp_path / "new.parquet"), "--chunk-rows", "100"]) == 0
    text = capsys.readouterr().out
    assert "island" in text and "psi" in text
    with pytest.raises(SystemExit):
        main(["monitor", b, str(tmp_path / "missing.parquet")])
    assert "missing.parquet" in capsys.readouterr().err
