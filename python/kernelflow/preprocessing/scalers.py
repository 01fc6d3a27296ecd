"""StandardScaler, MinMaxScaler, MaxAbsScaler: scikit-learn's API and results, computed by one
column-statistics pass (fit: ``column_stats``, ``weighted_column_stats`` with sample weights,
``sparse_column_stats`` for CSR / CSC input) and one fused transform pass (``numeric_transform``;
``sparse_column_apply`` on the stored values of sparse input)."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import OneToOneFeatureMixin
from sklearn.utils.validation import check_is_fitted

from kernelflow.io import persistable
from kernelflow.ops import merge_stats, sparse_apply_params, transform_params
from kernelflow.preprocessing._base import SPARSE_CENTER_MSG, CallbackMixin, KernelTransformer, set_init_params, with_callbacks
from kernelflow.preprocessing._params import maxabs_scale, minmax_scale, standard_scale


def _check_bool(est, name: str) -> None:
    v = getattr(est, name)
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"The '{name}' parameter of {type(est).__name__} must be an instance of 'bool' or an "
                         f"instance of 'numpy.bool'. Got {v!r} instead.")


class _StatsScaler(OneToOneFeatureMixin, KernelTransformer):
    """Scalers whose fit is one statistics pass, merged across partial_fit calls (Chan)."""

    _private_state = ("_rows_seen_", "_weighted_")
    _accept_sparse_fit: tuple | bool = False
    _accept_sparse_transform: tuple | str | bool = False
    _bool_params: tuple[str, ...] = ("copy",)

    def _reset(self):
        for attr in ("stats_", "n_samples_seen_", "_weighted_"):
            self.__dict__.pop(attr, None)

    def fit(self, X, y=None):
        """Compute the statistics of X."""
        self._reset()
        return self._partial_fit(X, y)

    def _partial_fit(self, X, y=None, sample_weight=None):
        first = not hasattr(self, "stats_")
        self._check_params()
        t, kind = self._validate(X, reset=first, accept_sparse=self._accept_sparse_fit)
        ctx = self._callbacks_begin(X, y, sample_weight) if isinstance(self, CallbackMixin) else None
        w = self._sample_weight(sample_weight, t, kind)
        self._check_sparse(kind)
        s = self._stats(t, w)
        self.stats_ = s if first else merge_stats(self.stats_, s)
        self._rows_seen_ = (0 if first else self._rows_seen_) + t.shape[0]
        self._weighted_ = (False if first else self._weighted_) or w is not None
        self._dtype_seen_ = np.float32 if str(t.dtype).endswith("float32") else np.float64
        self._finish_fit()
        if ctx is not None:
            self._callbacks_end(ctx, X, y, sample_weight)
        return self

    def partial_fit(self, X, y=None):
        """Update the statistics with the batch X (exactly equal to fitting on all batches at once)."""
        return self._partial_fit(X, y)

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y, **fit_params).transform(X)

    def transform(self, X, copy=None):
        check_is_fitted(self, "stats_")
        return self._transform_any(X, copy, self._accept_sparse_transform, self._forward_params,
                                   self._sparse_forward_params, self._sparse_error())

    def inverse_transform(self, X, copy=None):
        check_is_fitted(self, "stats_")
        return self._transform_any(X, copy, self._accept_sparse_transform, self._inverse_params,
                                   self._sparse_inverse_params, self._sparse_error())

    def _check_params(self):
        for name in self._bool_params:
            _check_bool(self, name)

    def _check_sparse(self, kind: str) -> None:
        pass

    def _sparse_error(self) -> str | None:
        return None

    _sparse_forward_params = None
    _sparse_inverse_params = None


@persistable
class StandardScaler(CallbackMixin, _StatsScaler):
    """Standardize features: z = (x - mean_) / scale_ (NaN ignored in fit, kept in transform).

    Same parameters, attributes and results as ``sklearn.preprocessing.StandardScaler``
    (``sample_weight``, CSR / CSC input with ``with_mean=False``, ``copy=False`` in place,
    callbacks), plus ``backend`` (auto, cpu, cuda, triton, torch) and ``dtype`` (output dtype;
    None keeps the input's float dtype, "bfloat16" and "float16" are available for torch output).
    Statistics accumulate in float64 and weighted statistics merge exactly across ``partial_fit``.
    """

    _accept_sparse_fit = ("csr", "csc")
    _accept_sparse_transform = "csr"
    _bool_params = ("copy", "with_mean", "with_std")

    def __init__(self, *, copy=True, with_mean=True, with_std=True, backend="auto", dtype=None):
        set_init_params(self, locals())

    @with_callbacks
    def fit(self, X, y=None, sample_weight=None):
        """Compute the mean and std of X (weighted by sample_weight) used for later scaling."""
        self._reset()
        return self._partial_fit(X, y, sample_weight)

    @with_callbacks
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the mean and std with the batch X (weighted by sample_weight): exactly equal to
        fitting on all batches at once."""
        return self._partial_fit(X, y, sample_weight)

    def _check_sparse(self, kind):
        if kind in ("sparse", "torch_sparse") and self.with_mean:
            raise ValueError(SPARSE_CENTER_MSG)

    def _sparse_error(self):
        return SPARSE_CENTER_MSG if self.with_mean else None

    def _finish_fit(self):
        s = self.stats_
        n = s[0]
        # scikit-learn: integer counts without weights, the data's float dtype with them; one
        # number when every feature saw the same count
        dt = self._dtype_seen_ if self._weighted_ else np.int64
        n_seen = n.astype(dt)
        self.n_samples_seen_ = n_seen[0] if n_seen.size and np.all(n_seen == n_seen[0]) else n_seen
        if not self.with_mean and not self.with_std:
            self.mean_ = self.var_ = self.scale_ = None
            return
        mean, var, scale = standard_scale(s)
        self.mean_ = mean
        self.var_ = var if self.with_std else None
        self.scale_ = scale if self.with_std else None

    def _forward_params(self):
        F = self.n_features_in_
        shift = self.mean_ if self.with_mean else 0.0
        inv = 1.0 / self.scale_ if self.with_std else 1.0
        return transform_params(F, shift=shift, inv_scale=inv)

    def _inverse_params(self):
        F = self.n_features_in_
        return transform_params(F, inv_scale=self.scale_ if self.with_std else 1.0,
                                offset=self.mean_ if self.with_mean else 0.0)

    def _sparse_forward_params(self):
        return sparse_apply_params(self.n_features_in_, scale=1.0 / self.scale_ if self.scale_ is not None else 1.0)

    def _sparse_inverse_params(self):
        return sparse_apply_params(self.n_features_in_, scale=self.scale_ if self.scale_ is not None else 1.0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = not self.with_mean
        return tags


@persistable
class MinMaxScaler(_StatsScaler):
    """Scale each feature to ``feature_range``: x * scale_ + min_ (NaN ignored in fit, kept).

    Same parameters, attributes and results as ``sklearn.preprocessing.MinMaxScaler``, plus
    ``backend`` and ``dtype``. ``clip=True`` clips in the same fused pass.
    """

    _bool_params = ("copy", "clip")

    def __init__(self, feature_range=(0, 1), *, copy=True, clip=False, backend="auto", dtype=None):
        set_init_params(self, locals())

    def _check_params(self):
        super()._check_params()
        fr = self.feature_range
        if not (isinstance(fr, tuple) and len(fr) == 2 and all(isinstance(v, numbers.Real) for v in fr)):
            raise ValueError(f"The 'feature_range' parameter of MinMaxScaler must be an instance of 'tuple'. Got {fr!r} "
                             "instead.")
        if fr[0] >= fr[1]:
            raise ValueError(f"Minimum of desired feature range must be smaller than maximum. Got {fr!r}.")

    def _finish_fit(self):
        self.n_samples_seen_ = int(self._rows_seen_)
        self.data_min_, self.data_max_, self.data_range_, self.scale_, self.min_ = minmax_scale(
            self.stats_, self.feature_range)

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

    Same parameters, attributes and results as ``sklearn.preprocessing.MaxAbsScaler`` (CSR / CSC
    input scaled on its stored values, ``clip``, ``copy=False`` in place), plus ``backend`` and
    ``dtype``.
    """

    _accept_sparse_fit = ("csr", "csc")
    _accept_sparse_transform = ("csr", "csc")
    _bool_params = ("copy", "clip")

    def __init__(self, *, copy=True, clip=False, backend="auto", dtype=None):
        set_init_params(self, locals())

    def _finish_fit(self):
        self.n_samples_seen_ = int(self._rows_seen_)
        self.max_abs_, self.scale_ = maxabs_scale(self.stats_)

    def _bounds(self):  # clip to [-1, 1] after scaling <=> to [-scale_, scale_] before it; none where NaN
        if not self.clip:
            return -np.inf, np.inf
        return np.where(np.isnan(self.scale_), -np.inf, -self.scale_), np.where(np.isnan(self.scale_), np.inf, self.scale_)

    def _forward_params(self):
        lo, hi = self._bounds()
        return transform_params(self.n_features_in_, lo=lo, hi=hi, inv_scale=1.0 / self.scale_)

    def _inverse_params(self):
        return transform_params(self.n_features_in_, inv_scale=self.scale_)

    def _sparse_forward_params(self):
        lo, hi = self._bounds()
        return sparse_apply_params(self.n_features_in_, lo=lo, hi=hi, scale=1.0 / self.scale_)

    def _sparse_inverse_params(self):
        return sparse_apply_params(self.n_features_in_, scale=self.scale_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
