"""The numeric parameters of a fitted Preprocessor from the statistics of its data, step after
step (impute -> clip -> nonlinear -> scale), each step reading the data as it sees it (the
view ``stats`` returns for it, exact or merged: see ``stats.py``). The maths that turns
statistics into fill, bounds and scale is the estimators' own (``preprocessing._params``)."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from kernelflow.preprocessing._params import (impute_fill, imputed_stats, iqr_bounds, maxabs_scale, minmax_scale,
                                              robust_scale, standard_scale, zscore_bounds)


class NumericParams(NamedTuple):
    fill: np.ndarray  # [F] float64, NaN: nothing imputed
    lo: np.ndarray  # [F] clip bounds (-inf / inf: none)
    hi: np.ndarray
    lambdas: np.ndarray  # [F] power-transform lambdas (0 for the other transforms)
    shift: np.ndarray  # [F] y = (x - shift) * inv_scale + offset
    inv_scale: np.ndarray
    offset: np.ndarray
    had_missing: np.ndarray  # [F] bool: the column had NaN in fit (missing indicators)


def check_raw(raw: np.ndarray, n_rows: int, names: Sequence[str], impute: str | None) -> None:
    """Fit input rules on the observed values' moments: no infinity; something to impute from."""
    inf = n_rows - raw[0] - raw[1] > 0
    if np.any(inf):
        raise ValueError(f"numeric columns {[names[j] for j in np.flatnonzero(inf)][:10]} contain infinity; "
                         "clip or replace it before fitting")
    if impute is not None and np.any(raw[0] == 0):
        raise ValueError(f"numeric columns {[names[j] for j in np.flatnonzero(raw[0] == 0)]} "
                         "have no observed value to impute from")


def numeric_params(pre, view, raw: np.ndarray, n_rows: int, names: Sequence[str]) -> NumericParams:
    """Parameters of the Preprocessor ``pre``'s numeric policy; ``view`` the statistics of the
    raw block (``ChunkStats`` / ``MergedStats``), ``raw`` its [6, F] moments."""
    F = raw.shape[1]
    check_raw(raw, n_rows, names, pre.impute)
    # impute: the moments after it in closed form (k copies of the fill merged in), or measured on the
    # imputed block of one chunk when the policy materialises that block anyway (see stats.py)
    fill = impute_fill(pre.impute, raw, view.quantiles([0.5])[0] if pre.impute == "median" else None, pre.fill_value)
    imputed = imputed_stats(raw, n_rows, fill) if pre.impute is not None else raw
    reads_block = pre.clip is not None or pre.nonlinear is not None or pre.scale == "robust" or pre.impute == "median"
    view = view.imputed(fill, imputed, pre.impute is not None, measure=reads_block)
    # clip: bounds fitted on the imputed data
    lo, hi = np.full(F, -np.inf), np.full(F, np.inf)
    if pre.clip == "zscore":
        lo, hi = zscore_bounds(view.moments(), pre.clip_k, empty=None)
    elif pre.clip == "iqr":
        lo, hi = iqr_bounds(*view.quantiles([0.25, 0.75]), pre.clip_k)
    elif pre.clip == "quantile":
        lo, hi = view.quantiles(list(pre.clip_quantiles))
    if pre.clip is not None:
        view = view.clipped(lo, hi)
    # nonlinear: the power transforms' lambdas by maximum likelihood on the clipped data
    lam = np.zeros(F)
    if pre.nonlinear in ("yeo-johnson", "box-cox"):
        lam = view.lambdas(pre.nonlinear, names)
    if pre.nonlinear is not None:
        view = view.transformed(pre.nonlinear, lam)
    # scale: statistics of the data as the scaler sees it
    shift, inv, off = np.zeros(F), np.ones(F), np.zeros(F)
    if pre.scale == "standard":
        shift, _, scale = standard_scale(view.moments(), empty=None)
        inv = 1.0 / scale
    elif pre.scale == "minmax":
        shift, _, _, inv, _ = minmax_scale(view.moments(), (0, 1), empty=None)
    elif pre.scale == "maxabs":
        inv = 1.0 / maxabs_scale(view.moments(), empty=None)[1]
    elif pre.scale == "robust":
        q1, shift, q3 = view.quantiles([0.25, 0.5, 0.75])
        inv = 1.0 / robust_scale(q1, q3)
    return NumericParams(fill, lo, hi, lam, shift, inv, off, raw[1] > 0)
