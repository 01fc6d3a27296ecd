"""The CPU performance targets the project holds its kernels to, read off a run's rows (never
asserted by tests: a shared or different machine moves them). Each target names the suite, the
op (None: every op), the kernelflow implementation, the row key and the least value it must reach;
every matching row (one per shape) gives one line."""

from __future__ import annotations

from typing import Any

# (suite, op, impl, key, threshold, what)
TARGETS: list[tuple[str, str | None, str, str, float, str]] = [
    ("preprocess", "fit", "kernelflow_fused", "frac_copy", 0.5, "column statistics at >= 50% of copy bandwidth"),
    ("preprocess", "transform_out", "kernelflow_fused", "frac_copy", 0.7,
     "numeric_transform into a reused output at >= 70% of copy bandwidth"),
    ("preprocess", "fit", "kernelflow_fused", "speedup_vs_numba_parallel", 1.0, "fit ahead of numba-parallel"),
    ("preprocess", "transform", "kernelflow_fused", "speedup_vs_numba_parallel", 1.0,
     "transform ahead of numba-parallel"),
    ("preprocess", "fit_transform", "kernelflow_fused", "speedup_vs_numba_parallel", 1.0,
     "fit_transform ahead of numba-parallel"),
    ("table", "fit_transform", "kernelflow_preprocessor", "speedup_vs_sklearn_column_transformer", 10.0,
     "Preprocessor >= 10x the ColumnTransformer"),
    ("table", "transform", "kernelflow_preprocessor", "speedup_vs_sklearn_column_transformer", 10.0,
     "Preprocessor transform >= 10x the ColumnTransformer"),
    ("quantile", "column_quantiles", "kernelflow_cpu", "speedup_vs_numpy_nanpercentile", 2.0,
     "quantiles >= 2x numpy.nanpercentile"),
    ("norm", "layer_norm_fwd_bwd", "kernelflow_cpu", "speedup_vs_torch_eager", 1.3,
     "LayerNorm forward + backward >= 1.3x torch"),
    ("int8", "linear", "kernelflow_w8a8", "speedup_vs_torch_fp32", 1.5, "Int8Linear w8a8 >= 1.5x torch fp32"),
    ("int8", "linear", "kernelflow_w8a8", "speedup_vs_torch_dynamic_int8", 1.0,
     "Int8Linear w8a8 not slower than torch dynamic int8"),
    ("int8", "linear", "kernelflow_weight_only", "speedup_vs_torch_fp32", 1.5,
     "Int8Linear weight-only >= 1.5x torch fp32"),
    ("int8", "linear", "kernelflow_weight_only", "speedup_vs_torch_dynamic_int8", 1.0,
     "Int8Linear weight-only not slower than torch dynamic int8"),
]


def evaluate(rows: list[dict]) -> list[dict[str, Any]]:
    """One entry per (target, matching CPU row): {target, suite, op, impl, shape, key, value,
    threshold, met}; a target whose rows carry no such key (peer skipped) has value None."""
    out = []
    for suite, op, impl, key, threshold, what in TARGETS:
        for r in rows:
            if r.get("suite") != suite or r.get("impl") != impl or r.get("device", "cpu") != "cpu":
                continue
            if op is not None and r.get("op") != op:
                continue
            v = r.get(key)
            out.append({"target": what, "suite": suite, "op": r["op"], "impl": impl, "shape": r.get("shape"),
                        "key": key, "value": v, "threshold": threshold,
                        "met": None if v is None else bool(v >= threshold)})
    return out
