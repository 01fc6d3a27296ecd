"""Fitted parameters from column statistics: the one place where the scalers, the imputer, the
clipper and ``kernelflow.Preprocessor`` turn statistics into fill values, clip bounds and
scale / shift, with scikit-learn's rules.

``stats`` is the [6, F] float64 block of ``kernelflow.ops.column_stats`` (rows: count, NaN count,
mean, M2, min, max; float64 accumulation in the kernels); ``merge_stats`` (Chan) combines two
blocks, so everything here works the same on one batch or on merged batches. Columns with no
observed value (count 0) get ``empty`` (NaN by default, as scikit-learn's attributes).
"""

from __future__ import annotations

import numpy as np

from kernelflow.ops import merge_stats


def handle_zeros_in_scale(scale: np.ndarray, constant_mask: np.ndarray | None = None) -> np.ndarray:
    """scikit-learn's rule: near-constant features get scale 1."""
    scale = np.array(scale, dtype=np.float64, copy=True)
    if constant_mask is None:
        constant_mask = scale < 10 * np.finfo(scale.dtype).eps
    scale[constant_mask] = 1.0
    return scale


def is_constant_feature(var: np.ndarray, mean: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Chan-Golub-LeVeque bound on the two-pass variance error (as scikit-learn)."""
    eps = np.finfo(np.float64).eps
    return var <= n * eps * var + (n * mean * eps) ** 2


def where_observed(v: np.ndarray, n: np.ndarray, empty: float | None = np.nan) -> np.ndarray:
    """v, with ``empty`` in the columns that saw no value (None: v unchanged)."""
    return v if empty is None else np.where(n > 0, v, empty)


def mean_var(stats: np.ndarray, empty: float | None = np.nan) -> tuple[np.ndarray, np.ndarray]:
    """Per column mean and population variance (M2 / count; the count may be a weight sum)."""
    n = stats[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = stats[3] / np.where(n != 0, n, 1)
    return where_observed(stats[2], n, empty), where_observed(var, n, empty)


def standard_scale(stats: np.ndarray, empty: float | None = np.nan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """StandardScaler's (mean_, var_, scale_): scale 1 for constant columns."""
    mean, var = mean_var(stats, empty)
    with np.errstate(invalid="ignore"):
        scale = handle_zeros_in_scale(np.sqrt(var), is_constant_feature(var, mean, stats[0]))
    return mean, var, scale


def minmax_scale(stats: np.ndarray, feature_range=(0, 1), empty: float | None = np.nan):
    """MinMaxScaler's (data_min_, data_max_, data_range_, scale_, min_): x * scale_ + min_."""
    fr0, fr1 = feature_range
    data_min, data_max = where_observed(stats[4], stats[0], empty), where_observed(stats[5], stats[0], empty)
    data_range = data_max - data_min
    scale = (fr1 - fr0) / handle_zeros_in_scale(data_range)
    return data_min, data_max, data_range, scale, fr0 - data_min * scale


def maxabs_scale(stats: np.ndarray, empty: float | None = np.nan) -> tuple[np.ndarray, np.ndarray]:
    """MaxAbsScaler's (max_abs_, scale_): x / scale_."""
    max_abs = where_observed(np.maximum(np.abs(stats[4]), np.abs(stats[5])), stats[0], empty)
    return max_abs, handle_zeros_in_scale(max_abs)


def robust_scale(q_lo: np.ndarray, q_hi: np.ndarray, quantile_range=(25.0, 75.0), unit_variance: bool = False):
    """RobustScaler's scale_ from the ``quantile_range`` quantiles (x - median) / scale_."""
    scale = handle_zeros_in_scale(np.asarray(q_hi, dtype=np.float64) - q_lo)
    if unit_variance:
        from scipy.stats import norm

        scale = scale / (norm.ppf(quantile_range[1] / 100.0) - norm.ppf(quantile_range[0] / 100.0))
    return scale


def zscore_bounds(stats: np.ndarray, k: float, empty: float | None = np.nan) -> tuple[np.ndarray, np.ndarray]:
    """mean -+ k * std (population std) per column."""
    mean, var = mean_var(stats, empty)
    std = np.sqrt(var)
    return mean - k * std, mean + k * std


def iqr_bounds(q1: np.ndarray, q3: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Tukey's fences: [Q1 - k * IQR, Q3 + k * IQR]."""
    iqr = q3 - q1
    return q1 - k * iqr, q3 + k * iqr


def constant_stats(count: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The [6, F] statistics of ``count[j]`` copies of ``value[j]`` per column."""
    count = np.asarray(count, dtype=np.float64)
    value = np.broadcast_to(np.asarray(value, dtype=np.float64), count.shape)
    F = count.shape[0]
    return np.stack([count, np.zeros(F), value, np.zeros(F), np.where(count > 0, value, np.inf),
                     np.where(count > 0, value, -np.inf)])


def imputed_stats(stats: np.ndarray, n_rows: int, fill: np.ndarray) -> np.ndarray:
    """Statistics of the columns after every missing value became ``fill``: the observed values'
    statistics merged (Chan) with n_rows - count copies of the fill, in closed form."""
    return merge_stats(stats, constant_stats(n_rows - stats[0], fill))


def impute_fill(strategy: str | None, stats: np.ndarray, median: np.ndarray | None = None,
                fill_value: float | None = None) -> np.ndarray:
    """Per column fill value of strategy "mean" (the observed mean), "median" (given, from the
    quantile op or a sketch), "constant" (``fill_value``) or None (NaN: nothing is imputed)."""
    F = stats.shape[1]
    if strategy == "mean":
        return stats[2].copy()
    if strategy == "median":
        return np.asarray(median, dtype=np.float64).reshape(F)
    if strategy == "constant":
        return np.full(F, float(fill_value))
    return np.full(F, np.nan)
