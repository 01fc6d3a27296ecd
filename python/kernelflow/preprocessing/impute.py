"""SimpleImputer: scikit-learn's API and results (a subclass of scikit-learn's: its validation,
messages and host paths for strings and callables); the numeric statistics come from kernels
(dense and sparse) and imputation of dense float data is the fused numeric transform."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from sklearn.impute import SimpleImputer as _SkSimpleImputer
from sklearn.utils._available_if import available_if
from sklearn.utils._mask import _get_mask
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from kernelflow import ops
from kernelflow._array import numpy_to_tensor, tensor_to_numpy
from kernelflow.io import persistable
from kernelflow.ops import merge_stats, transform_params
from kernelflow.ops.sparse import Compressed, is_sparse
from kernelflow.preprocessing._base import KernelTransformer, column_quantiles, set_init_params
from kernelflow.preprocessing._params import impute_fill

_STRATEGIES = ("mean", "median", "most_frequent", "constant")


@persistable
class SimpleImputer(KernelTransformer, _SkSimpleImputer):
    """Replace missing values with a per-column statistic or a constant.

    Same parameters, attributes, methods and results as ``sklearn.impute.SimpleImputer`` (it
    is a subclass: validation, messages, string / object data, callable strategies,
    ``indicator_``, ``inverse_transform`` are scikit-learn's), with the numeric work on kernels:
    the mean of dense data from one float64 column-statistics pass, the median from the exact
    quantile op, CSR / CSC statistics from the sparse kernels over the stored values plus the
    implicit zeros, and imputation of dense float data as the fused transform (in place with
    ``copy=False``). Adds ``partial_fit`` (strategies "mean" and "constant" on numeric data:
    exact, mergeable), ``backend`` and ``dtype`` (output dtype of torch / CuPy input, which stays
    on its device).
    """

    _private_state = ("_keep", "_indicator", "_object", "_fit_dtype", "_fill_dtype", "_tensor_fit")

    def __init__(self, *, missing_values=np.nan, strategy="mean", fill_value=None, copy=True,
                 add_indicator=False, keep_empty_features=False, backend="auto", dtype=None):
        set_init_params(self, locals())

    # -- torch / CuPy input: validated here, fitted and imputed on the data's device --------
    def _check_tensor_params(self):
        if callable(self.strategy) or self.strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES} for torch / CuPy input, got {self.strategy!r}")
        if self.strategy == "constant" and self.fill_value is not None and not isinstance(self.fill_value, numbers.Real):
            raise ValueError(f"fill_value must be a number for numeric data, got {self.fill_value!r}")
        mv = self.missing_values
        if not (mv is None or isinstance(mv, numbers.Real)):
            raise ValueError(f"missing_values must be np.nan or a number for numeric data, got {mv!r}")

    def _missing_to_nan(self, t: torch.Tensor) -> torch.Tensor:
        mv = self.missing_values
        if mv is None or (isinstance(mv, float) and np.isnan(mv)):
            return t
        return torch.where(t == mv, torch.tensor(float("nan"), dtype=t.dtype, device=t.device), t)

    @staticmethod
    def _is_tensor(X) -> bool:
        return isinstance(X, torch.Tensor) or type(X).__module__.split(".")[0] == "cupy"

    @available_if(lambda self: self.strategy in ("mean", "constant"))
    def partial_fit(self, X, y=None):
        """Update the statistics with the batch X (strategies "mean" and "constant", numeric data: exact)."""
        self._check_tensor_params()
        self._tensor_fit = True
        return self._fit_numeric(X)

    def _fit_numeric(self, X):
        first = not hasattr(self, "stats_")
        t, kind = KernelTransformer._validate(self, X, reset=first)
        if kind == "numpy16":
            t = t.float()
        t = self._missing_to_nan(t)
        s = self._stats(t)
        self.stats_ = s if first else merge_stats(self.stats_, s)
        self._finish_tensor_fit(t)
        return self

    def _finish_tensor_fit(self, t):
        n = self.stats_[0]
        empty = n == 0  # no observed value in the column
        if self.strategy == "most_frequent":
            stat = _most_frequent(t)
        else:
            stat = impute_fill(self.strategy, self.stats_, column_quantiles(t, [0.5], self.backend)[0]
                               if self.strategy == "median" else None, 0.0 if self.fill_value is None else self.fill_value)
        if self.strategy == "constant":
            stat = np.where(empty & (not self.keep_empty_features), np.nan, stat)
        else:
            stat = np.where(empty, 0.0 if self.keep_empty_features else np.nan, stat)
        self.statistics_ = stat
        self._keep = ~np.isnan(stat) | bool(self.keep_empty_features)
        self._indicator = np.flatnonzero(self.stats_[1] > 0) if self.add_indicator else np.zeros(0, dtype=np.int64)

    def _impute_tensor(self, t: torch.Tensor) -> torch.Tensor:
        t_all = t
        keep = self._keep
        if not keep.all():
            names = getattr(self, "feature_names_in_", np.arange(self.n_features_in_))
            warnings.warn(f"Skipping features without any observed values: {names[~keep]}. At least one non-missing "
                          f"value is needed for imputation with strategy='{self.strategy}'.")
            t = t[:, torch.as_tensor(np.flatnonzero(keep), device=t.device)]
        p = transform_params(t.shape[1], fill=np.where(np.isnan(self.statistics_[keep]), 0.0, self.statistics_[keep]))
        out = self._apply(t, p)
        if self._indicator.size:
            ind = torch.isnan(t_all[:, torch.as_tensor(self._indicator, device=t_all.device)]).to(out.dtype)
            out = torch.cat([out, ind], dim=1)
        return out

    # -- fit -----------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit the imputer on X (scikit-learn's validation; the statistics on kernels)."""
        for attr in ("stats_", "statistics_", "indicator_"):
            self.__dict__.pop(attr, None)
        if self._is_tensor(X):
            self._check_tensor_params()
            self._tensor_fit = True
            return self._fit_numeric(X)
        self._tensor_fit = False
        return _SkSimpleImputer.fit(self, X, y)

    def _kernel_ok(self, X, strategy) -> bool:
        return isinstance(strategy, str) and strategy in ("mean", "median") and X.dtype.kind == "f"

    def _nan_tensor(self, X: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        if not _is_nan(self.missing_values):
            X = np.where(mask, np.nan, X)
        return numpy_to_tensor(X.astype(np.float32) if X.dtype == np.float16 else X)

    def _dense_fit(self, X, strategy, missing_values, fill_value):
        if X.dtype.kind == "O":
            _check_object_values(X)
        if not self._kernel_ok(X, strategy):
            return _SkSimpleImputer._dense_fit(self, X, strategy, missing_values, fill_value)
        mask = _get_mask(X, missing_values)
        self._fit_indicator(mask)
        t = self._nan_tensor(X, mask)
        s = self._stats(t)  # one float64 pass; the count tells which columns are empty
        stat = impute_fill(strategy, s, (column_quantiles(t, [0.5], self.backend)[0] if t.shape[0]
                                         else np.full(t.shape[1], np.nan)) if strategy == "median" else None)
        return np.where(s[0] == 0, 0.0 if self.keep_empty_features else np.nan, stat)

    def _sparse_fit(self, X, strategy, missing_values, fill_value):
        if not self._kernel_ok(X, strategy):
            return _SkSimpleImputer._sparse_fit(self, X, strategy, missing_values, fill_value)
        mask = _get_mask(X, missing_values)
        data = X.data if _is_nan(missing_values) else np.where(mask.data, np.nan, X.data)
        c = Compressed(torch.from_numpy(X.indptr), torch.from_numpy(X.indices), torch.from_numpy(np.ascontiguousarray(data)),
                       X.shape, X.format == "csr")
        s = ops.sparse_column_stats(c, backend=self.backend).cpu().numpy()  # implicit zeros included
        stat = impute_fill(strategy, s, ops.sparse_column_quantiles(c, [0.5], backend=self.backend).cpu().numpy()[0]
                           if strategy == "median" else None)
        self._fit_indicator(mask)
        return np.where(s[0] == 0, 0.0 if self.keep_empty_features else np.nan, stat)

    # -- transform -----------------------------------------------------------------------
    def transform(self, X):
        """Impute all missing values in X (dense float data: one fused kernel pass)."""
        check_is_fitted(self, "statistics_")
        if getattr(self, "_tensor_fit", False):
            t, kind = KernelTransformer._validate(self, X, reset=False)
            return self._output(self._impute_tensor(self._missing_to_nan(t)), kind)
        stats = np.asarray(self.statistics_)
        if self._is_tensor(X) or stats.dtype.kind != "f" or self._fit_dtype.kind != "f" or is_sparse(X):
            return _SkSimpleImputer.transform(self, X)
        Xv = self._validate_input(X, in_fit=False)
        if Xv.dtype.kind != "f" or is_sparse(Xv):
            return _SkSimpleImputer.transform(self, Xv)
        if Xv.shape[1] != stats.shape[0]:
            raise ValueError("X has %d features per sample, expected %d" % (Xv.shape[1], stats.shape[0]))
        mask = _get_mask(Xv, self.missing_values)
        keep = np.ones(stats.shape[0], dtype=bool) if self.keep_empty_features else ~np.isnan(stats)
        if not keep.all():
            invalid = np.arange(Xv.shape[1])[~keep]
            if hasattr(self, "feature_names_in_"):
                invalid = self.feature_names_in_[invalid]
            warnings.warn(f"Skipping features without any observed values: {invalid}. At least one non-missing value "
                          f"is needed for imputation with strategy='{self.strategy}'.")
        fill = stats[keep].astype(Xv.dtype).astype(np.float64)
        if keep.all() and _is_nan(self.missing_values) and Xv.dtype != np.float16:
            t = numpy_to_tensor(Xv)  # validated with copy=self.copy: ours to overwrite
            if t.data_ptr() == Xv.__array_interface__["data"][0] or Xv.size == 0:
                self._apply(t, transform_params(t.shape[1], fill=fill), inplace=True)
                out = Xv
            else:
                out = tensor_to_numpy(self._apply(t, transform_params(t.shape[1], fill=fill)))
        else:
            t = self._nan_tensor(Xv, mask)
            if not keep.all():
                t = t[:, torch.from_numpy(np.flatnonzero(keep))]
            out = tensor_to_numpy(self._apply(t, transform_params(t.shape[1], fill=fill))).astype(Xv.dtype, copy=False)
            if keep.all() and not self.copy:  # copy=False: the result lands in X, as scikit-learn
                Xv[...] = out
                out = Xv
        return self._concatenate_indicator(out, self._transform_indicator(mask))

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y).transform(X)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "statistics_")
        if not getattr(self, "_tensor_fit", False):
            return _SkSimpleImputer.get_feature_names_out(self, input_features)
        names = _check_feature_names_in(self, input_features)
        ind = [f"missingindicator_{n}" for n in names[self._indicator]]
        return np.concatenate([names[self._keep], np.asarray(ind, dtype=object)])

    # -- persistence: the missing indicator is rebuilt from its fitted feature list ---------
    def _get_state(self) -> dict:
        state = {k: v for k, v in KernelTransformer._get_state(self).items() if k != "indicator_"}
        for k in ("_fit_dtype", "_fill_dtype"):
            if k in state:
                state[k] = np.dtype(state[k]).str
        ind = getattr(self, "indicator_", None)
        if ind is not None:
            state["_indicator_features"] = np.asarray(ind.features_, dtype=np.int64)
            state["_indicator_sparse"] = bool(ind._precomputed_sparse) if hasattr(ind, "_precomputed_sparse") else False
        return state

    def _set_state(self, state: dict) -> None:
        feats = state.pop("_indicator_features", None)
        state.pop("_indicator_sparse", None)
        for k in ("_fit_dtype", "_fill_dtype"):
            if k in state:
                state[k] = np.dtype(state[k])
        super()._set_state(state)
        if feats is not None:
            from sklearn.impute import MissingIndicator

            ind = MissingIndicator(missing_values=self.missing_values, error_on_new=False)
            ind.features_ = np.asarray(feats, dtype=np.int64)
            ind._n_features = self.n_features_in_
            ind.n_features_in_ = self.n_features_in_
            ind.sparse_ = "auto"
            ind._precomputed = False
            self.indicator_ = ind

    def __sklearn_tags__(self):
        tags = _SkSimpleImputer.__sklearn_tags__(self)
        return tags


def _check_object_values(X: np.ndarray) -> None:
    """Object data must hold strings and numbers (pandas' C type inference, per column): anything
    else gets a clear TypeError instead of an "unhashable type" from deep inside the fit."""
    import pandas as pd

    for j in range(X.shape[1]):
        if pd.api.types.infer_dtype(X[:, j], skipna=True) in ("mixed", "unknown-array"):
            bad = next((v for v in X[:, j] if not isinstance(v, (str, bytes, numbers.Number)) and v is not None
                        and not pd.isna(v)), None)
            if bad is not None:
                raise TypeError(f"SimpleImputer: column {j}: every value must be a string or a number "
                                f"(argument must be a string or a number), got {type(bad).__name__}")


def _is_nan(v) -> bool:
    return isinstance(v, float) and v != v


def _most_frequent(t: torch.Tensor) -> np.ndarray:
    """Per column the most frequent non-NaN value (the smallest among ties, as scikit-learn), from
    a sort on the data's device; NaN for a column with no value."""
    out = np.full(t.shape[1], np.nan)
    for j in range(t.shape[1]):
        col = t[:, j]
        col = col[~torch.isnan(col)]
        if col.numel() == 0:
            continue
        vals, counts = torch.unique(col, sorted=True, return_counts=True)
        out[j] = float(vals[int(torch.argmax(counts))])  # argmax returns the first (smallest) maximum
    return out


def _missing_mask(df, missing_values):
    if missing_values is None or (isinstance(missing_values, float) and np.isnan(missing_values)):
        return df.isna()
    return (df == missing_values) | df.isna()
