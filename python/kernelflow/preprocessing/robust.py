"""RobustScaler (scikit-learn's API and results) and OutlierClipper: per-column bounds or
centre/scale from exact quantiles or column statistics (fit), one fused ``numeric_transform``
pass (transform)."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import OneToOneFeatureMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from kernelflow.io import persistable
from kernelflow import ops
from kernelflow.ops import merge_stats, sparse_apply_params, transform_params
from kernelflow.preprocessing import _base
from kernelflow.preprocessing._base import KernelTransformer, set_init_params
from kernelflow.preprocessing._params import iqr_bounds, robust_scale, zscore_bounds

_SPARSE_CENTER = ("Cannot center sparse matrices: use `with_centering=False` instead. See docstring for motivation "
                  "and alternatives.")


def _quantiles(est: KernelTransformer, t: torch.Tensor, q) -> np.ndarray:
    """[len(q), F] NaN-aware quantiles of t (q in [0, 1]); rejects +-inf like scikit-learn."""
    if bool(torch.isinf(t).any()):
        raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
    # looked up on the module at call time so the quantile op can be swapped (tests, other builds)
    return np.asarray(_base.column_quantiles(t, list(q), est.backend), dtype=np.float64)


def _check_range(name: str, r, lo: float, hi: float) -> tuple[float, float]:
    if not (isinstance(r, (tuple, list)) and len(r) == 2 and all(isinstance(v, numbers.Real) for v in r)):
        raise ValueError(f"{name} must be a tuple (q_min, q_max) of numbers, got {r!r}")
    if not lo <= r[0] <= r[1] <= hi:
        raise ValueError(f"Invalid {name}: {r!r} (need {lo} <= q_min <= q_max <= {hi})")
    return float(r[0]), float(r[1])


class _QuantileTransformer(OneToOneFeatureMixin, KernelTransformer):
    _accept_sparse_fit: str | bool = False

    def fit(self, X, y=None):
        t, _ = self._validate(X, reset=True, accept_sparse=self._accept_sparse_fit)
        self._check_params()
        self._fit_tensor(t)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y).transform(X)

    def transform(self, X):
        check_is_fitted(self, self._fitted_attr)
        return self._transform_any(X, None, ("csr", "csc") if self._accept_sparse_fit else False,
                                   self._forward_params, getattr(self, "_sparse_forward_params", None))


@persistable
class RobustScaler(_QuantileTransformer):
    """Scale with statistics robust to outliers: (x - center_) / scale_, center_ the median and
    scale_ the ``quantile_range`` spread of each column (NaN ignored in fit, kept in transform).

    Same parameters, attributes and results as ``sklearn.preprocessing.RobustScaler`` (dense
    input), plus ``backend`` and ``dtype``. Quantiles are exact (numpy's "linear" rule).
    """

    _fitted_attr = "n_features_in_"
    _accept_sparse_fit = "csc"

    def __init__(self, *, with_centering=True, with_scaling=True, quantile_range=(25.0, 75.0), copy=True,
                 unit_variance=False, backend="auto", dtype=None):
        set_init_params(self, locals())

    def _check_params(self):
        r = self.quantile_range
        if not (isinstance(r, tuple) and len(r) == 2 and all(isinstance(v, numbers.Real) for v in r)):
            raise ValueError(f"The 'quantile_range' parameter of RobustScaler must be an instance of 'tuple'. Got {r!r} "
                             "instead.")
        if not 0 <= r[0] <= r[1] <= 100:
            raise ValueError(f"Invalid quantile range: {r}")

    def _fit_tensor(self, t) -> None:
        q_min, q_max = (float(v) for v in self.quantile_range)
        sparse = not isinstance(t, torch.Tensor)
        if sparse and self.with_centering:
            raise ValueError(_SPARSE_CENTER)
        qs = ([0.5] if self.with_centering else []) + ([q_min / 100.0, q_max / 100.0] if self.with_scaling else [])
        if sparse:  # quantiles over the stored values plus the implicit zeros, without densifying
            Q = ops.sparse_column_quantiles(t, qs, backend=self.backend).cpu().numpy() if qs else np.empty((0, t.shape[1]))
        else:
            Q = _quantiles(self, t, qs) if qs else np.empty((0, t.shape[1]))
        self.center_ = Q[0] if self.with_centering else None
        self.scale_ = robust_scale(Q[-2], Q[-1], (q_min, q_max), self.unit_variance) if self.with_scaling else None

    def _forward_params(self):
        F = self.n_features_in_
        return transform_params(F, shift=self.center_ if self.with_centering else 0.0,
                                inv_scale=1.0 / self.scale_ if self.with_scaling else 1.0)

    def _sparse_forward_params(self):
        return sparse_apply_params(self.n_features_in_, scale=1.0 / self.scale_ if self.with_scaling else 1.0)

    def inverse_transform(self, X):
        check_is_fitted(self, self._fitted_attr)
        p = transform_params(self.n_features_in_, inv_scale=self.scale_ if self.with_scaling else 1.0,
                             offset=self.center_ if self.with_centering else 0.0)
        sp = sparse_apply_params(self.n_features_in_, scale=self.scale_ if self.with_scaling else 1.0)
        return self._transform_any(X, None, ("csr", "csc"), lambda: p, lambda: sp)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = not self.with_centering
        return tags

    def _set_state(self, state: dict) -> None:
        state.setdefault("center_", None)
        state.setdefault("scale_", None)
        super()._set_state(state)


_METHODS = ("zscore", "iqr", "quantile")


@persistable
class OutlierClipper(_QuantileTransformer):
    """Clip each column to bounds learnt in fit; NaN passes through.

    method="zscore": mean_ +- k * std (population std, NaN ignored); "iqr": [Q1 - k * IQR,
    Q3 + k * IQR] (Tukey's fences with k=1.5); "quantile": the ``quantile_range`` percentiles.
    Columns with no finite value in fit are left unclipped. Fitted attributes ``lower_`` and
    ``upper_``. ``partial_fit`` (exact, merged statistics) exists for method="zscore" only.
    """

    _fitted_attr = "lower_"
    _private_state = ("stats_",)

    def __init__(self, *, method="zscore", k=3.0, quantile_range=(1.0, 99.0), backend="auto", dtype=None):
        set_init_params(self, locals())

    def _check_params(self):
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {self.method!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Real) or not (0 <= self.k < np.inf):
            raise ValueError(f"k must be a finite number >= 0, got {self.k!r}")
        _check_range("quantile_range", self.quantile_range, 0.0, 100.0)

    def _fit_tensor(self, t: torch.Tensor) -> None:
        if self.method == "zscore":
            self.stats_ = self._stats(t)
            self._bounds_from_stats()
            return
        self.__dict__.pop("stats_", None)
        if self.method == "iqr":
            lo, hi = iqr_bounds(*_quantiles(self, t, [0.25, 0.75]), self.k)
        else:
            q_min, q_max = _check_range("quantile_range", self.quantile_range, 0.0, 100.0)
            lo, hi = _quantiles(self, t, [q_min / 100.0, q_max / 100.0])
        self._set_bounds(lo, hi)

    def _bounds_from_stats(self) -> None:
        self._set_bounds(*zscore_bounds(self.stats_, self.k))

    def _set_bounds(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lower_ = np.where(np.isnan(lo), -np.inf, lo).astype(np.float64)
        self.upper_ = np.where(np.isnan(hi), np.inf, hi).astype(np.float64)

    def _can_partial_fit(self) -> bool:
        if self.method != "zscore":
            raise AttributeError(f"partial_fit needs method='zscore' (quantile bounds cannot be merged "
                                 f"exactly across batches), got method={self.method!r}")
        return True

    @available_if(_can_partial_fit)
    def partial_fit(self, X, y=None):
        """Update the bounds with the batch X (method="zscore" only; exactly equal to one fit on
        all batches: column statistics merged with Chan's rule)."""
        self._check_params()
        first = not hasattr(self, "stats_")
        t, _ = self._validate(X, reset=first)
        s = self._stats(t)
        self.stats_ = s if first else merge_stats(self.stats_, s)
        self._bounds_from_stats()
        return self

    def _forward_params(self):
        return transform_params(self.n_features_in_, lo=self.lower_, hi=self.upper_)
