"""StandardScaler, MinMaxScaler, MaxAbsScaler: scikit-learn's API and results, computed by one
``column_stats`` pass (fit) and one fused ``numeric_transform`` pass (transform)."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import OneToOneFeatureMixin
from sklearn.utils.validation import check_is_fitted

from kernelflow.io import persistable
from kernelflow.ops import merge_stats, transform_params
from kernelflow.preprocessing._base import KernelTransformer, handle_zeros_in_scale, is_constant_feature


class _StatsScaler(OneToOneFeatureMixin, KernelTransformer):
    """Scalers whose fit is one column_stats pass, merged across partial_fit calls (Chan)."""

    _private_state = ("_rows_seen_",)

    def fit(self, X, y=None):
        for attr in ("stats_", "n_samples_seen_"):
            if hasattr(self, attr):
                delattr(self, attr)
        return self.partial_fit(X, y)

    def partial_fit(self, X, y=None):
        """Update the statistics with the batch X (exactly equal to fitting on all batches at once)."""
        first = not hasattr(self, "stats_")
        self._check_params()
        t, _ = self._validate(X, reset=first)
        s = self._stats(t)
        self.stats_ = s if first else merge_stats(self.stats_, s)
        self._rows_seen_ = (0 if first else self._rows_seen_) + t.shape[0]
        self._finish_fit()
        return self

    def fit_transform(self, X, y=None, **fit_params):
        for attr in ("stats_", "n_samples_seen_"):
            if hasattr(self, attr):
                delattr(self, attr)
        self._check_params()
        t, kind = self._validate(X, reset=True)
        self.stats_ = self._stats(t)
        self._rows_seen_ = t.shape[0]
        self._finish_fit()
        return self._output(self._apply(t, self._forward_params()), kind)

    def transform(self, X, copy=None):
        check_is_fitted(self, "stats_")
        t, kind = self._validate(X, reset=False)
        return self._output(self._apply(t, self._forward_params()), kind)

    def inverse_transform(self, X, copy=None):
        check_is_fitted(self, "stats_")
        t, kind = self._validate(X, reset=False)
        return self._output(self._apply(t, self._inverse_params()), kind)

    def _check_params(self):
        pass

    @staticmethod
    def _nan_where_empty(v: np.ndarray, n: np.ndarray) -> np.ndarray:
        return np.where(n > 0, v, np.nan)


@persistable
class StandardScaler(_StatsScaler):
    """Standardize features: z = (x - mean_) / scale_ (NaN ignored in fit, kept in transform).

    Same parameters, attributes and results as ``sklearn.preprocessing.StandardScaler``
    (dense input; ``sample_weight`` not supported), plus ``backend`` (auto, cpu, cuda, triton,
    torch) and ``dtype`` (output dtype; None keeps the input's float dtype, "bfloat16" and
    "float16" are available for torch output).
    """

    def __init__(self, *, copy=True, with_mean=True, with_std=True, backend="auto", dtype=None):
        self.copy = copy
        self.with_mean = with_mean
        self.with_std = with_std
        self.backend = backend
        self.dtype = dtype

    def _finish_fit(self):
        s = self.stats_
        n = s[0]
        self.n_samples_seen_ = int(n[0]) if n.size and np.all(n == n[0]) else n.astype(np.int64)
        if not self.with_mean and not self.with_std:
            self.mean_ = self.var_ = self.scale_ = None
            return
        mean = self._nan_where_empty(s[2], n)
        var = self._nan_where_empty(s[3] / np.maximum(n, 1), n)
        self.mean_ = mean
        self.var_ = var if self.with_std else None
        if self.with_std:
            self.scale_ = handle_zeros_in_scale(np.sqrt(var), is_constant_feature(var, mean, n))
        else:
            self.scale_ = None

    def _forward_params(self):
        F = self.n_features_in_
        shift = self.mean_ if self.with_mean else 0.0
        inv = 1.0 / self.scale_ if self.with_std else 1.0
        return transform_params(F, shift=shift, inv_scale=inv)

    def _inverse_params(self):
        F = self.n_features_in_
        return transform_params(F, inv_scale=self.scale_ if self.with_std else 1.0,
                                offset=self.mean_ if self.with_mean else 0.0)


@persistable
class MinMaxScaler(_StatsScaler):
    """Scale each feature to ``feature_range``: x * scale_ + min_ (NaN ignored in fit, kept).

    Same parameters, attributes and results as ``sklearn.preprocessing.MinMaxScaler``, plus
    ``backend`` and ``dtype``. ``clip=True`` clips in the same fused pass.
    """

    def __init__(self, feature_range=(0, 1), *, copy=True, clip=False, backend="auto", dtype=None):
        self.feature_range = feature_range
        self.copy = copy
        self.clip = clip
        self.backend = backend
        self.dtype = dtype

    def _check_params(self):
        fr = self.feature_range
        if not (isinstance(fr, (tuple, list)) and len(fr) == 2 and all(isinstance(v, numbers.Real) for v in fr)):
            raise ValueError(f"feature_range must be a tuple (min, max), got {fr!r}")
        if fr[0] >= fr[1]:
            raise ValueError(f"Minimum of desired feature range must be smaller than maximum. Got {fr!r}.")

    def _finish_fit(self):
        s = self.stats_
        n = s[0]
        fr0, fr1 = self.feature_range
        self.n_samples_seen_ = int(self._rows_seen_)
        self.data_min_ = self._nan_where_empty(s[4], n)
        self.data_max_ = self._nan_where_empty(s[5], n)
        self.data_range_ = self.data_max_ - self.data_min_
        self.scale_ = (fr1 - fr0) / handle_zeros_in_scale(self.data_range_)
        self.min_ = fr0 - self.data_min_ * self.scale_

    def _forward_params(self):
        F = self.n_features_in_
        fr0, fr1 = self.feature_range
        if self.clip:  # output in [fr0, fr1]  <=>  input in [data_min, data_min + (fr1 - fr0) / scale]
            lo, hi = self.data_min_, self.data_min_ + (fr1 - fr0) / self.scale_
        else:
            lo, hi = -np.inf, np.inf
        return transform_params(F, lo=lo, hi=hi, shift=self.data_min_, inv_scale=self.scale_, offset=fr0)

    def _inverse_params(self):
        F = self.n_features_in_
        return transform_params(F, shift=self.feature_range[0], inv_scale=1.0 / self.scale_, offset=self.data_min_)


@persistable
class MaxAbsScaler(_StatsScaler):
    """Scale each feature by its maximum absolute value (NaN ignored in fit, kept).

    Same parameters, attributes and results as ``sklearn.preprocessing.MaxAbsScaler`` (dense
    input), plus ``backend`` and ``dtype``.
    """

    def __init__(self, *, copy=True, backend="auto", dtype=None):
        self.copy = copy
        self.backend = backend
        self.dtype = dtype

    def _finish_fit(self):
        s = self.stats_
        n = s[0]
        self.n_samples_seen_ = int(self._rows_seen_)
        self.max_abs_ = self._nan_where_empty(np.maximum(np.abs(s[4]), np.abs(s[5])), n)
        self.scale_ = handle_zeros_in_scale(self.max_abs_)

    def _forward_params(self):
        return transform_params(self.n_features_in_, inv_scale=1.0 / self.scale_)

    def _inverse_params(self):
        return transform_params(self.n_features_in_, inv_scale=self.scale_)
