"""SimpleImputer: scikit-learn's API and results; the mean comes from one column_stats pass
and imputation is the fused numeric transform with a per-column fill value."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from sklearn.utils._available_if import available_if
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from kernelflow.io import persistable
from kernelflow.ops import merge_stats, transform_params
from kernelflow.preprocessing._base import KernelTransformer, column_quantiles

_STRATEGIES = ("mean", "median", "most_frequent", "constant")


@persistable
class SimpleImputer(KernelTransformer):
    """Replace missing values with a per-column statistic or a constant.

    Same parameters, attributes and results as ``sklearn.impute.SimpleImputer``, plus
    ``partial_fit`` (strategies "mean" and "constant": exact, mergeable), ``backend`` and ``dtype``.
    Numeric data: the statistic comes from one kernel pass (column_stats for the mean, the exact
    quantile op for the median, a per-column sort on the data's device for the most frequent
    value) and imputation is the fused transform. String / object data ("most_frequent",
    "constant") is imputed on the host with pandas. ``missing_values`` may be NaN or a number (a
    number is turned into NaN with one extra pass before the kernel). ``add_indicator`` appends
    scikit-learn's missing-indicator columns.
    """

    _private_state = ("_keep", "_indicator", "_object")

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
    @available_if(lambda self: self.strategy in ("mean", "constant"))
    def partial_fit(self, X, y=None):
        """Update the statistics with the batch X (strategies "mean" and "constant": exact)."""
        self._check_params()
        if self._is_object(X):
            raise ValueError("partial_fit supports numeric data only")
        self._object = False
        return self._fit_numeric(X)

    def _fit_numeric(self, X):
        first = not hasattr(self, "stats_")
        t, _ = self._validate(X, reset=first)
        s = self._stats(t)
        self.stats_ = s if first else merge_stats(self.stats_, s)
        self._finish_fit(t)
        return self

    def fit(self, X, y=None):
        for attr in ("stats_", "statistics_"):
            if hasattr(self, attr):
                delattr(self, attr)
        self._check_params()
        if self.strategy in ("most_frequent", "constant") and self._is_object(X):
            return self._fit_object(X)
        self._object = False
        return self._fit_numeric(X)  # scikit-learn's validation rejects non-numeric data here

    def _finish_fit(self, t=None):
        n = self.stats_[0]
        empty = n == 0  # no observed value in the column
        if self.strategy == "mean":
            stat = self.stats_[2].copy()
        elif self.strategy == "median":
            stat = column_quantiles(t, [0.5], self.backend)[0]
        elif self.strategy == "most_frequent":
            stat = _most_frequent(t)
        else:
            fv = 0.0 if self.fill_value is None else float(self.fill_value)
            stat = np.full(self.n_features_in_, fv)
        if self.strategy == "constant":
            stat = np.where(empty & (not self.keep_empty_features), np.nan, stat)
        else:
            stat = np.where(empty, 0.0 if self.keep_empty_features else np.nan, stat)
        self.statistics_ = stat
        # columns with no observed value are dropped (scikit-learn's behaviour) unless kept
        self._keep = ~np.isnan(stat)
        self._indicator = np.flatnonzero(self.stats_[1] > 0) if self.add_indicator else np.zeros(0, dtype=np.int64)

    # -- string / object columns: host dictionary work with pandas ------------------------
    @staticmethod
    def _is_object(X) -> bool:
        """True for string / object data that does not convert to numbers (host path)."""
        if isinstance(X, torch.Tensor) or type(X).__module__.split(".")[0] == "cupy":
            return False
        dtypes = getattr(X, "dtypes", None)
        if dtypes is not None and not isinstance(dtypes, np.dtype):
            import pandas as pd

            if all(pd.api.types.is_numeric_dtype(d) for d in dtypes):
                return False
        elif np.asarray(X).dtype.kind in "biuf":
            return False
        try:
            np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            return True
        return False

    def _fit_object(self, X):
        import pandas as pd

        Xv = validate_data(self, X, reset=True, dtype=None, ensure_all_finite=False)
        df = pd.DataFrame(Xv).astype(object)
        for c in df.columns:  # pandas' C type inference: "mixed" means values that are not str / numbers
            if pd.api.types.infer_dtype(df[c], skipna=True) == "mixed":
                raise TypeError(f"SimpleImputer: column {c}: every value must be a string or a number "
                                "(argument must be a string or a number)")
        df = df.where(~_missing_mask(df, self.missing_values), None)
        stats = []
        for c in df.columns:
            col = df[c].dropna()
            if self.strategy == "constant":
                stats.append("missing_value" if self.fill_value is None else self.fill_value)
            elif len(col) == 0:
                stats.append(np.nan if not self.keep_empty_features else "")
            else:
                vc = col.value_counts()
                stats.append(sorted(vc[vc == vc.max()].index)[0])
        self.statistics_ = np.asarray(stats, dtype=object)
        miss = _missing_mask(pd.DataFrame(Xv).astype(object), self.missing_values).to_numpy()
        self._keep = np.asarray([not (isinstance(v, float) and np.isnan(v)) for v in stats])
        self._indicator = np.flatnonzero(miss.any(0)) if self.add_indicator else np.zeros(0, dtype=np.int64)
        self._object = True
        return self

    def _transform_object(self, X):
        import pandas as pd

        Xv = validate_data(self, X, reset=False, dtype=None, ensure_all_finite=False)
        df = pd.DataFrame(Xv).astype(object)
        miss = _missing_mask(df, self.missing_values)
        out = df.where(~miss, pd.Series(self.statistics_, index=df.columns), axis=1).to_numpy(dtype=object)
        out = out[:, self._keep]
        if self._indicator.size:
            out = np.hstack([out, miss.to_numpy()[:, self._indicator].astype(object)])
        return out

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y).transform(X)

    # -- transform -----------------------------------------------------------------------
    def _impute(self, t: torch.Tensor) -> torch.Tensor:
        t_all = t
        keep = self._keep
        if not keep.all():
            names = getattr(self, "feature_names_in_", np.arange(self.n_features_in_))
            warnings.warn(f"Skipping features without any observed values: {names[~keep]}. At least one "
                          f"non-missing value is needed for imputation with strategy='{self.strategy}'.")
            t = t[:, torch.as_tensor(np.flatnonzero(keep), device=t.device)]
        p = transform_params(t.shape[1], fill=self.statistics_[keep])
        out = self._apply(t, p)
        if self._indicator.size:
            ind = torch.isnan(t_all[:, torch.as_tensor(self._indicator, device=t_all.device)]).to(out.dtype)
            out = torch.cat([out, ind], dim=1)
        return out

    def transform(self, X):
        check_is_fitted(self, "statistics_")
        if getattr(self, "_object", False):
            return self._transform_object(X)
        t, kind = self._validate(X, reset=False)
        return self._output(self._impute(t), kind)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "statistics_")
        names = _check_feature_names_in(self, input_features)
        ind = [f"missingindicator_{n}" for n in names[self._indicator]]
        return np.concatenate([names[self._keep], np.asarray(ind, dtype=object)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        return tags


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
