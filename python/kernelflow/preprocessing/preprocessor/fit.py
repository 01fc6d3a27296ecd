"""The one fit path of the Preprocessor, shaped like scikit-learn's StandardScaler: the
statistics of a chunk (``chunk_state``), merged across chunks (``merge_states``: Chan for the
moments, a sketch for the quantiles, added category counts), turned into every fitted parameter
by ``finish``.

``fit(X)`` is the fit of one chunk: the chunk's data is at hand, so its state keeps the numeric
block and the statistics are exact (``stats.ChunkStats``). ``partial_fit``, ``fit_dask`` and
``distributed.fit_preprocessor`` keep the mergeable form (``stats.MergedStats``); policies whose
statistics do not merge are refused before any work (``check_mergeable``).
"""

from __future__ import annotations

import functools

import numpy as np

from kernelflow.preprocessing.preprocessor import columns
from kernelflow.preprocessing.preprocessor.categories import column_counts, merge_counts, plan_column
from kernelflow.preprocessing.preprocessor.layout import set_layout
from kernelflow.preprocessing.preprocessor.params import numeric_params
from kernelflow.preprocessing.preprocessor.stats import (ChunkStats, MergedStats, NotMergeable, chunk_summary,
                                                         merge_summaries)


def start(pre, df, named: bool) -> None:
    """Reset: validate the parameters, forget any merged state, fix the input columns."""
    pre._check_params()
    if len(df) == 0:
        raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
    pre.__dict__.pop("_stream_", None)
    pre._named_ = named
    pre.n_features_in_ = df.shape[1]
    if named:
        pre.feature_names_in_ = np.asarray([str(c) for c in df.columns], dtype=object)
    else:
        pre.__dict__.pop("feature_names_in_", None)
    pre.columns_in_ = [str(c) for c in df.columns]
    num, cat, pas = columns.split_columns(df, pre.numeric, pre.categorical, pre.passthrough, pre.drop)
    pre.numeric_columns_, pre.categorical_columns_, pre.passthrough_columns_ = (
        [str(c) for c in num], [str(c) for c in cat], [str(c) for c in pas])


def check_mergeable(pre) -> None:
    """Raise when the policy has a statistic that does not merge across chunks."""
    if pre.nonlinear in ("yeo-johnson", "box-cox") or (pre.clip is not None and pre.scale in ("standard", "minmax", "maxabs")):
        raise NotMergeable()


def _needs_sketch(pre) -> bool:
    return pre.impute == "median" or pre.clip in ("iqr", "quantile") or pre.scale == "robust"


def chunk_state(pre, df, exact: bool = False) -> dict:
    """Statistics of one chunk (a DataFrame with the fitted columns; runs anywhere, e.g. on Dask
    workers): row count, the numeric block (exact) or its mergeable summary, category counts."""
    x = pre._numeric_block(df, pre._orig_names(df, pre.numeric_columns_))
    num = x if exact else chunk_summary(x, nonlinear_name=pre.nonlinear, sketch=_needs_sketch(pre), backend=pre.backend)
    cats = [column_counts(df[c]) for c in pre._orig_names(df, pre.categorical_columns_)]
    return {"rows": int(len(df)), "num": num, "cats": cats}


def merge_states(names, a: dict, b: dict) -> dict:
    """Two chunks' states (mergeable form) as one."""
    return {"rows": a["rows"] + b["rows"], "num": merge_summaries(a["num"], b["num"]),
            "cats": [merge_counts(n, ca, cb) for n, ca, cb in zip(names, a["cats"], b["cats"])]}


def merge_all(pre, states) -> dict:
    return functools.reduce(functools.partial(merge_states, pre.categorical_columns_), states)


def finish(pre, state: dict) -> None:
    """Every fitted parameter from a state (exact or merged): the numeric parameters step after
    step, the categorical plans, the output layout."""
    rows, num = state["rows"], state["num"]
    if isinstance(num, dict):
        view, raw = MergedStats.of(num, rows), num["raw"]
    else:
        view = ChunkStats(num, pre.backend)
        raw = view.moments()
    p = numeric_params(pre, view, raw, rows, pre.numeric_columns_)
    plans = [plan_column(c, cc, cat_impute=pre.cat_impute, cat_fill_value=pre.cat_fill_value, encode=pre.encode,
                         min_frequency=pre.min_frequency, max_categories=pre.max_categories, onehot_drop=pre.onehot_drop)
             for c, cc in zip(pre.categorical_columns_, state["cats"])]
    pre.fill_, pre.clip_lo_, pre.clip_hi_, pre.lambdas_ = p.fill, p.lo, p.hi, p.lambdas
    pre.shift_, pre.inv_scale_, pre.offset_ = p.shift, p.inv_scale, p.offset
    pre.indicator_columns_ = [c for c, m in zip(pre.numeric_columns_, p.had_missing) if m] if pre.add_indicator else []
    pre._cat_plans = plans
    set_layout(pre)


def fit(pre, X) -> None:
    """fit = reset + the statistics of one chunk, exact."""
    df, named = columns.as_frame(X)
    start(pre, df, named)
    finish(pre, chunk_state(pre, df, exact=True))


def partial_fit(pre, X) -> None:
    """Merge the chunk X into the kept state (the first chunk resets) and refit from it."""
    df, named = columns.as_frame(X)
    if not hasattr(pre, "_stream_"):
        start(pre, df, named)
        check_mergeable(pre)
        state = chunk_state(pre, df)
    else:
        pre._check_frame(df)
        state = merge_states(pre.categorical_columns_, pre._stream_, chunk_state(pre, df))
    finish(pre, state)
    pre._stream_ = state


def fit_dask(pre, ddf) -> None:
    """Each partition's state computed where it lives, merged in partition order."""
    import dask

    start(pre, ddf.head(1, npartitions=-1), True)
    check_mergeable(pre)
    states = dask.compute(*[dask.delayed(chunk_state)(pre, p) for p in ddf.to_delayed()])
    finish(pre, merge_all(pre, states))
