"""table suite: the whole-table ``kernelflow.Preprocessor`` (one fused pass over every column)
against the equivalent scikit-learn ``ColumnTransformer`` (``Preprocessor.to_sklearn()``:
SimpleImputer -> StandardScaler on numeric columns, most-frequent imputation -> OneHotEncoder on
string columns) on the same DataFrame, interleaved.

Ops: fit, transform, transform_out (kernelflow into a reused output), fit_transform. Bytes
counted for transform: the numeric float32 input read once and the float32 output written once
(string columns are dictionary-encoded by pandas, not counted). The outputs and feature names
are compared before timing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kernelflow.bench.codepaths import family_path
from kernelflow.bench.compare import max_rel_diff
from kernelflow.bench.data import make_table
from kernelflow.bench.timing import interleaved_ms, record


def run(cfg, progress) -> dict:
    from kernelflow import Preprocessor  # noqa: PLC0415

    rows = cfg.table_rows or cfg.rows
    n_cat = max(1, cfg.cols // 4)
    n_num = max(1, cfg.cols - n_cat)
    progress(f"data [{rows}, {n_num} num + {n_cat} cat]")
    df = make_table(rows, n_num=n_num, n_cat=n_cat, nan=cfg.nan)
    pre = Preprocessor(backend=cfg.cpu_backend).fit(df)
    out = pre.transform(df)
    ct = pre.to_sklearn().fit(df)
    ref = np.asarray(ct.transform(df))
    diff = max_rel_diff(ref, out)
    names_equal = list(pre.get_feature_names_out()) == list(ct.get_feature_names_out())
    failures = []
    if not diff <= 1e-5:
        failures.append(f"Preprocessor differs from the ColumnTransformer by {diff:.3g} (> 1e-5)")
    if not names_equal:
        failures.append("Preprocessor feature names differ from the ColumnTransformer's")
    buf = np.empty_like(out)
    out_cols, out_bytes = int(out.shape[1]), out.nbytes
    del out, ref  # gigabytes at a million rows: the timed calls make their own
    shape = [rows, n_num + n_cat]
    in_bytes = rows * n_num * 4
    nbytes = {"fit": in_bytes, "transform": in_bytes + out_bytes, "transform_out": in_bytes + out_bytes,
              "fit_transform": 2 * in_bytes + out_bytes}
    kf = Preprocessor(backend=cfg.cpu_backend)
    sk = pre.to_sklearn()
    ops: dict[str, dict[str, Any]] = {
        "fit": {"kernelflow_preprocessor": lambda: kf.fit(df), "sklearn_column_transformer": lambda: sk.fit(df)},
        "transform": {"kernelflow_preprocessor": lambda: pre.transform(df),
                      "sklearn_column_transformer": lambda: ct.transform(df)},
        "transform_out": {"kernelflow_preprocessor": lambda: pre.transform(df, out=buf)},
        "fit_transform": {"kernelflow_preprocessor": lambda: kf.fit(df).transform(df),
                          "sklearn_column_transformer": lambda: sk.fit(df).transform(df)},
    }
    out_rows = []
    for op, fns in ops.items():
        progress(op)
        t = interleaved_ms(fns, repeat=cfg.repeat, warmup=1)
        for impl, ms in t.items():
            r = record(op, impl, ms, shape=shape, dtype="float32", nbytes=nbytes[op], out_cols=out_cols)
            if impl.startswith("kernelflow"):
                r["path"] = family_path("table")
                r["max_rel_diff_vs_sklearn"] = diff
            out_rows.append(r)
    notes = (f"{rows} rows x {n_num} float32 numeric ({cfg.nan:.0%} NaN) + {n_cat} string categorical "
             f"(50 levels, Dirichlet(0.5) frequencies, {cfg.nan:.0%} missing) -> {out_cols} output columns. "
             f"Implementations interleaved, median of {cfg.repeat}. Max relative difference vs the "
             f"ColumnTransformer {diff:.2e}; feature names equal: {names_equal}. A fresh output array costs "
             "page faults on first touch: transform_out writes into a reused one.")
    return {"rows": out_rows, "skipped": {}, "checks": {"max_rel_diff_vs_sklearn": diff, "feature_names_equal": names_equal},
            "failures": failures, "notes": notes}
