"""SimpleImputer: scikit-learn's API and results; the mean comes from one column_stats pass
and imputation is the fused numeric transform with a per-column fill value."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from kernelflow.io import persistable
from kernelflow.ops import merge_stats, transform_params
from kernelflow.preprocessing._base import KernelTransformer

_STRATEGIES = ("mean", "constant")


@persistable
class SimpleImputer(KernelTransformer):
    """Replace missing values with a per-column statistic or a constant.

    Same parameters, attributes and results as ``sklearn.impute.SimpleImputer`` for numeric
    data with strategy "mean" or "constant", plus ``partial_fit`` (exact, mergeable means),
    ``backend`` and ``dtype``. ``missing_values`` may be NaN or a number (a number is turned into
    NaN with one extra pass before the fused kernel).
    """

    _private_state = ("_keep",)

    def __init__(self, *, missing_values=np.nan, strategy="mean", fill_value=None, copy=True,
                 add_indicator=False, keep_empty_features=False, backend="auto", dtype=None):
        self.missing_values = missing_values
        self.strategy = strategy
        self.fill_value = fill_value
        self.copy = copy
        self.add_indicator = add_indicator
        self.keep_empty_features = keep_empty_features
        self.backend = backend
        self.dtype = dtype

    # -- validation ----------------------------------------------------------------------
    def _check_params(self):
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}, got {self.strategy!r}")
        if self.add_indicator:
            raise NotImplementedError("add_indicator=True is not supported yet")
        if self.strategy == "constant" and self.fill_value is not None and not isinstance(self.fill_value, numbers.Real):
            raise ValueError(f"fill_value must be a number for numeric data, got {self.fill_value!r}")
        mv = self.missing_values
        if not (mv is None or isinstance(mv, numbers.Real)):
            raise ValueError(f"missing_values must be np.nan or a number, got {mv!r}")

    def _missing_to_nan(self, t: torch.Tensor) -> torch.Tensor:
        mv = self.missing_values
        if mv is None or (isinstance(mv, float) and np.isnan(mv)):
            return t
        return torch.where(t == mv, torch.tensor(float("nan"), dtype=t.dtype, device=t.device), t)

    def _validate(self, X, reset):
        t, kind = super()._validate(X, reset)
        return self._missing_to_nan(t), kind

    # -- fit -----------------------------------------------------------------------------
    def fit(self, X, y=None):
        for attr in ("stats_", "statistics_"):
            if hasattr(self, attr):
                delattr(self, attr)
        return self.partial_fit(X, y)

    def partial_fit(self, X, y=None):
        """Update the statistics with the batch X (means merge exactly across batches)."""
        self._check_params()
        first = not hasattr(self, "stats_")
        t, _ = self._validate(X, reset=first)
        s = self._stats(t)
        self.stats_ = s if first else merge_stats(self.stats_, s)
        self._finish_fit()
        return self

    def _finish_fit(self):
        n = self.stats_[0]
        empty = n == 0  # no observed value in the column
        if self.strategy == "mean":
            stat = np.where(empty, 0.0 if self.keep_empty_features else np.nan, self.stats_[2])
        else:
            fv = 0.0 if self.fill_value is None else float(self.fill_value)
            stat = np.where(empty & (not self.keep_empty_features), np.nan, fv)
        self.statistics_ = stat
        # columns with no observed value are dropped (scikit-learn's behaviour) unless kept
        self._keep = ~np.isnan(stat)

    def fit_transform(self, X, y=None, **fit_params):
        self._check_params()
        for attr in ("stats_", "statistics_"):
            if hasattr(self, attr):
                delattr(self, attr)
        t, kind = self._validate(X, reset=True)
        self.stats_ = self._stats(t)
        self._finish_fit()
        return self._output(self._impute(t), kind)

    # -- transform -----------------------------------------------------------------------
    def _impute(self, t: torch.Tensor) -> torch.Tensor:
        keep = self._keep
        if not keep.all():
            names = getattr(self, "feature_names_in_", np.arange(self.n_features_in_))
            warnings.warn(f"Skipping features without any observed values: {names[~keep]}. At least one "
                          f"non-missing value is needed for imputation with strategy='{self.strategy}'.")
            t = t[:, torch.as_tensor(np.flatnonzero(keep), device=t.device)]
        p = transform_params(t.shape[1], fill=self.statistics_[keep])
        return self._apply(t, p)

    def transform(self, X):
        check_is_fitted(self, "statistics_")
        t, kind = self._validate(X, reset=False)
        return self._output(self._impute(t), kind)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "statistics_")
        names = _check_feature_names_in(self, input_features)
        return names[self._keep]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        return tags
