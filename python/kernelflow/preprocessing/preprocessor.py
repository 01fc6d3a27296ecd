"""kernelflow.Preprocessor: a whole table's preprocessing, fitted in as few passes as the policy
allows and applied as one fused pass that writes the model's input matrix.

Numeric columns: impute (mean / median / constant) -> clip (z-score / IQR / quantile bounds)
-> nonlinear transform (log1p / sqrt / Yeo-Johnson / Box-Cox) -> scale (standard / min-max / max-abs / robust), plus optional
missing-indicator columns. Categorical columns (strings, pandas / pyarrow categoricals, or
integers named as categorical): impute (most frequent / constant) -> one-hot or ordinal, with
unknown and infrequent handling. ``to_sklearn()`` builds the equivalent scikit-learn
``ColumnTransformer``; both give the same output.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from kernelflow import ops
from kernelflow._array import kind_of, out_dtype as _out_dtype, pyarrow_to_pandas, tensor_to_numpy
from kernelflow.io import persistable
from kernelflow.preprocessing._base import TorchOutputMixin, column_quantiles, handle_zeros_in_scale, is_constant_feature

_IMPUTE = (None, "mean", "median", "constant")
_CLIP = (None, "zscore", "iqr", "quantile")
_TRANSFORM = (None, "log1p", "sqrt", "yeo-johnson", "box-cox")
_SCALE = (None, "standard", "minmax", "maxabs", "robust")
_CAT_IMPUTE = ("most_frequent", "constant")
_ENCODE = ("onehot", "ordinal")
_UNKNOWN = ("error", "ignore", "infrequent_if_exist")


def _check_choice(value, choices, name):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclass
class _CatPlan:
    """Fitted plan of one categorical column."""

    name: str
    categories: np.ndarray  # sorted category values (after imputation)
    slots: np.ndarray  # [n_categories] int64: output slot of each category, -1 = no column
    width: int  # output columns of this feature
    names: list = field(default_factory=list)  # output feature names (without prefix)
    infrequent: np.ndarray | None = None  # categories folded into the infrequent column
    infrequent_slot: int = -1  # output slot of the infrequent column (unknowns go there), -1 none
    fill: Any = None  # the value missing entries are imputed with
    counts: np.ndarray | None = None  # fit counts of the categories (for infrequent grouping)


def _as_frame(X: Any):
    import pandas as pd

    X = pyarrow_to_pandas(X)
    if type(X).__module__.split(".")[0] == "polars":
        X = X.to_pandas()
    if isinstance(X, pd.DataFrame):
        return X, True
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), False


def _json_value(v):
    """A category value as a JSON scalar (str, int, float, bool)."""
    if isinstance(v, np.generic):
        v = v.item()
    if not isinstance(v, (str, int, float, bool)):
        raise TypeError(f"category value {v!r} of type {type(v).__name__} cannot be saved")
    return v


def _lookup(s, plan: _CatPlan) -> np.ndarray:
    """Codes of the values of column s in plan.categories; missing -> the fill's code; unknown -> -1."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(s, from_pandas=True)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        value_set = pa.array(list(plan.categories), type=arr.type) if len(arr) else None
        idx = pc.index_in(arr, value_set=value_set) if value_set is not None else pa.array([], pa.int32())
        missing = np.asarray(arr.is_null(nan_is_null=True)) if len(arr) else np.zeros(0, bool)
        codes = np.array(idx.fill_null(-1), dtype=np.int32)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        obj = s.astype(object)
        missing = obj.isna().to_numpy()
        codes = pd.Index(plan.categories, dtype=object).get_indexer(obj).astype(np.int32)
    if missing.any():
        fill_code = int(np.flatnonzero(plan.categories == plan.fill)[0]) if np.any(plan.categories == plan.fill) else -1
        codes[missing] = fill_code
    return codes


class PipelineInputs(NamedTuple):
    """What a fitted Preprocessor's module / ONNX graph takes: see ``Preprocessor.inputs``."""

    num: torch.Tensor  # [N, n_numeric] float, NaN = missing
    cat: torch.Tensor  # [N, n_categorical] int64 codes, -1 = unknown
    passthrough: torch.Tensor | None  # [N, n_passthrough] float, or None


@persistable
class Preprocessor(TorchOutputMixin, TransformerMixin, BaseEstimator):
    """Fused whole-table preprocessing with scikit-learn's API.

    Parameters
    ----------
    numeric, categorical : "auto" or a list of column names (or indices for arrays). "auto"
        takes numeric dtypes as numeric and strings / categoricals / booleans as categorical.
    passthrough, drop : columns copied unchanged (numeric) or left out.
    impute : None | "mean" | "median" | "constant" (``fill_value``) for numeric columns.
    add_indicator : add a 0/1 missing-indicator column per numeric column that had NaN in fit.
    clip : None | "zscore" (mean +- clip_k * std) | "iqr" (Q1 - clip_k * IQR, Q3 + clip_k * IQR)
        | "quantile" (``clip_quantiles``), bounds fitted on the imputed data.
    nonlinear : None | "log1p" | "sqrt" | "yeo-johnson" | "box-cox" applied after clipping (the
        power transforms' lambdas are fitted per column by scipy's maximum likelihood, as
        scikit-learn's PowerTransformer does).
    scale : None | "standard" | "minmax" | "maxabs" | "robust".
    cat_impute : "most_frequent" | "constant" (``cat_fill_value``).
    encode : "onehot" | "ordinal".
    handle_unknown : "error" | "ignore" | "infrequent_if_exist"; min_frequency,
        max_categories and onehot_drop ("first" | "if_binary" | None) as in OneHotEncoder;
        ``unknown_value`` for ordinal encoding.
    dtype : output dtype (float32, float16, bfloat16; numpy output needs float32/float64).
    backend : "auto" | "cpu" | "cuda" | "triton" | "torch".
    device : None (host data is processed on the CPU) or a torch device such as "cuda": the
        numeric block and the category codes are moved there once, fit statistics and the fused
        transform run there, and transform returns a torch tensor on that device.
    """

    def __init__(self, *, numeric="auto", categorical="auto", passthrough=(), drop=(),
                 impute="mean", fill_value=0.0, add_indicator=False,
                 clip=None, clip_k=3.0, clip_quantiles=(0.01, 0.99),
                 nonlinear=None, scale="standard",
                 cat_impute="most_frequent", cat_fill_value="missing", encode="onehot",
                 handle_unknown="ignore", min_frequency=None, max_categories=None, onehot_drop=None,
                 unknown_value=-1, dtype="float32", backend="auto", device=None):
        self.numeric = numeric
        self.categorical = categorical
        self.passthrough = passthrough
        self.drop = drop
        self.impute = impute
        self.fill_value = fill_value
        self.add_indicator = add_indicator
        self.clip = clip
        self.clip_k = clip_k
        self.clip_quantiles = clip_quantiles
        self.nonlinear = nonlinear
        self.scale = scale
        self.cat_impute = cat_impute
        self.cat_fill_value = cat_fill_value
        self.encode = encode
        self.handle_unknown = handle_unknown
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.onehot_drop = onehot_drop
        self.unknown_value = unknown_value
        self.dtype = dtype
        self.backend = backend
        self.device = device

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        _check_choice(self.impute, _IMPUTE, "impute")
        _check_choice(self.clip, _CLIP, "clip")
        _check_choice(self.nonlinear, _TRANSFORM, "nonlinear")
        _check_choice(self.scale, _SCALE, "scale")
        _check_choice(self.cat_impute, _CAT_IMPUTE, "cat_impute")
        _check_choice(self.encode, _ENCODE, "encode")
        _check_choice(self.handle_unknown, _UNKNOWN, "handle_unknown")
        _check_choice(self.onehot_drop, (None, "first", "if_binary"), "onehot_drop")
        if not isinstance(self.clip_k, numbers.Real) or self.clip_k <= 0:
            raise ValueError(f"clip_k must be a positive number, got {self.clip_k!r}")
        q = self.clip_quantiles
        if not (isinstance(q, (tuple, list)) and len(q) == 2 and 0 <= q[0] < q[1] <= 1):
            raise ValueError(f"clip_quantiles must be (low, high) with 0 <= low < high <= 1, got {q!r}")
        if self.min_frequency is not None and not (
            (isinstance(self.min_frequency, numbers.Integral) and self.min_frequency >= 1)
            or (isinstance(self.min_frequency, numbers.Real) and 0 < self.min_frequency < 1)
        ):
            raise ValueError(f"min_frequency must be an int >= 1 or a float in (0, 1), got {self.min_frequency!r}")
        if self.max_categories is not None and (not isinstance(self.max_categories, numbers.Integral) or self.max_categories < 1):
            raise ValueError(f"max_categories must be an int >= 1, got {self.max_categories!r}")
        if self.encode == "ordinal" and self.handle_unknown == "infrequent_if_exist":
            raise ValueError("handle_unknown='infrequent_if_exist' needs encode='onehot'")
        _out_dtype(self.dtype, "dtype")

    def _select(self, df, spec, auto_mask, name) -> list:
        cols = list(df.columns)
        if isinstance(spec, str) and spec == "auto":
            return [c for c, m in zip(cols, auto_mask) if m]
        spec = list(spec)
        out = []
        for c in spec:
            if isinstance(c, numbers.Integral) and not isinstance(c, bool) and c not in cols:
                if not 0 <= c < len(cols):
                    raise ValueError(f"{name}: column index {c} out of range for {len(cols)} columns")
                c = cols[c]
            if c not in cols:
                raise ValueError(f"{name}: column {c!r} is not in the input (columns: {cols[:20]})")
            out.append(c)
        return out

    def _columns(self, df):
        import pandas as pd

        is_num = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
        explicit = set(self._select(df, self.passthrough, [], "passthrough")) | set(self._select(df, self.drop, [], "drop"))
        num_auto = isinstance(self.numeric, str) and self.numeric == "auto"
        cat_auto = isinstance(self.categorical, str) and self.categorical == "auto"
        num = self._select(df, self.numeric, is_num, "numeric")
        cat = self._select(df, self.categorical, [not m for m in is_num], "categorical")
        if not num_auto and not cat_auto:
            both = set(num) & set(cat)
            if both:
                raise ValueError(f"columns {sorted(map(str, both))} are both numeric and categorical")
        # a column named explicitly wins over the automatic choice of the other kind
        if num_auto and not cat_auto:
            num = [c for c in num if c not in set(cat)]
        elif cat_auto:
            cat = [c for c in cat if c not in set(num)]
        num = [c for c in num if c not in explicit]
        cat = [c for c in cat if c not in explicit]
        for c in num:
            if not pd.api.types.is_numeric_dtype(df[c]):
                raise ValueError(f"numeric column {c!r} has non-numeric dtype {df[c].dtype}")
        return num, cat, self._select(df, self.passthrough, [], "passthrough")

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        self._check_params()
        df, self._named_ = _as_frame(X)
        if len(df) == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        if hasattr(self, "_stream_"):
            del self._stream_
        self._set_columns(df)
        xnum = self._numeric_block(df, [self._orig_name(df, c) for c in self.numeric_columns_])
        self._fit_numeric(xnum)
        self._fit_categorical(df, [self._orig_name(df, c) for c in self.categorical_columns_])
        self._layout()
        return self

    def _numeric_block(self, df, cols) -> torch.Tensor:
        """[N, len(cols)] float32 (all float32 columns) or float64 tensor, on ``device``."""
        t = self._host_numeric_block(df, cols)
        return t if self.device is None else t.to(self.device, non_blocking=True)

    def _host_numeric_block(self, df, cols) -> torch.Tensor:
        if not cols:
            return torch.empty((len(df), 0), dtype=torch.float64)
        block = df[cols]
        dts = {np.dtype(t) for t in block.dtypes if hasattr(t, "kind")}
        dt = np.float32 if dts and all(t == np.float32 for t in dts) else np.float64
        arr = block.to_numpy(dtype=dt, na_value=np.nan)
        return torch.from_numpy(np.ascontiguousarray(arr))

    def _fit_numeric(self, x: torch.Tensor) -> None:
        F = x.shape[1]
        be = self.backend
        s = ops.column_stats(x, backend=be).cpu().numpy() if F else np.zeros((6, 0))
        n_rows = x.shape[0]
        if np.any(n_rows - s[0] - s[1] > 0):
            bad = [self.numeric_columns_[j] for j in np.flatnonzero(n_rows - s[0] - s[1] > 0)]
            raise ValueError(f"numeric columns {bad[:10]} contain infinity; clip or replace it before fitting")
        empty = s[0] == 0
        if self.impute is not None and np.any(empty):
            raise ValueError(f"numeric columns {[self.numeric_columns_[j] for j in np.flatnonzero(empty)]} "
                             "have no observed value to impute from")
        need_q = []
        if self.impute == "median":
            need_q += [0.5]
        if self.clip == "iqr" or self.scale == "robust":
            need_q += [0.25, 0.75]
        if self.clip == "quantile":
            need_q += list(self.clip_quantiles)
        # fill values
        if self.impute == "mean":
            fill = s[2].copy()
        elif self.impute == "median":
            fill = self._quantiles(x, [0.5])[0]
        elif self.impute == "constant":
            fill = np.full(F, float(self.fill_value))
        else:
            fill = np.full(F, np.nan)
        self.fill_ = fill
        self.indicator_columns_ = [c for c, nn in zip(self.numeric_columns_, s[1]) if nn > 0] if self.add_indicator else []
        # the data as the clip step sees it: imputed (only the imputed moments change)
        lo, hi = np.full(F, -np.inf), np.full(F, np.inf)
        cur = x
        staged = False
        if self.clip is not None or self.nonlinear is not None or self.scale in ("robust",) or self.impute == "median":
            # materialise the imputed block once when later statistics are not closed-form
            cur = ops.numeric_transform(x, ops.transform_params(F, fill=fill), "float64", backend=be)
            staged = True
        if self.clip == "zscore":
            st = ops.column_stats(cur, backend=be).cpu().numpy()
            mean, std = st[2], np.sqrt(st[3] / np.maximum(st[0], 1))
            lo, hi = mean - self.clip_k * std, mean + self.clip_k * std
        elif self.clip == "iqr":
            q1, q3 = self._quantiles(cur, [0.25, 0.75])
            lo, hi = q1 - self.clip_k * (q3 - q1), q3 + self.clip_k * (q3 - q1)
        elif self.clip == "quantile":
            lo, hi = self._quantiles(cur, list(self.clip_quantiles))
        self.clip_lo_, self.clip_hi_ = lo, hi
        self.lambdas_ = np.zeros(F)
        if self.clip is not None or self.nonlinear is not None:
            cur = ops.numeric_transform(cur, ops.transform_params(F, lo=lo, hi=hi), "float64", backend=be)
            if self.nonlinear in ("yeo-johnson", "box-cox"):
                self.lambdas_ = self._fit_lambdas(cur)
            cur = self._nonlinear(cur)
            staged = True
        # scaling statistics of the data as the scaler sees it
        if self.scale in ("standard", "minmax", "maxabs"):
            if staged:
                st = ops.column_stats(cur, backend=be).cpu().numpy()
            else:  # imputed moments in closed form: k copies of the fill value merged in (Chan)
                k = n_rows - s[0]
                filled = np.stack([k, np.zeros(F), fill, np.zeros(F), np.where(k > 0, fill, np.inf), np.where(k > 0, fill, -np.inf)])
                st = ops.merge_stats(s, filled) if self.impute is not None else s
            self._scale_from_stats(st)
        elif self.scale == "robust":
            q1, med, q3 = self._quantiles(cur, [0.25, 0.5, 0.75])
            self.shift_, self.inv_scale_, self.offset_ = med, 1.0 / handle_zeros_in_scale(q3 - q1), np.zeros(F)
        else:
            self._scale_from_stats(np.zeros((6, F)))

    def _nonlinear(self, t: torch.Tensor) -> torch.Tensor:
        if self.nonlinear is None:
            return t
        if t.dim() == 1:  # one value per column
            return self._nonlinear(t[None, :])[0]
        F = t.shape[1]
        fn = torch.full((F,), ops.FN_CODES[self.nonlinear], dtype=torch.int64)
        lam = torch.as_tensor(getattr(self, "lambdas_", np.zeros(F)), dtype=torch.float64)
        return ops.nonlinear_reference(t, fn, lam)

    def _fit_lambdas(self, x: torch.Tensor) -> np.ndarray:
        """Per-column lambda by scipy's maximum likelihood (what PowerTransformer fits), on the host."""
        from scipy import stats

        X = x.detach().cpu().numpy()
        lam = np.empty(X.shape[1])
        for j in range(X.shape[1]):
            col = X[:, j][~np.isnan(X[:, j])]
            if self.nonlinear == "box-cox":
                if col.size == 0 or np.min(col) <= 0:
                    raise ValueError(f"Box-Cox needs strictly positive data; column {self.numeric_columns_[j]!r} "
                                     "is not (after imputation and clipping)")
                lam[j] = stats.boxcox(col, lmbda=None)[1]
            else:
                var, mean = np.var(col), np.mean(col)
                lam[j] = 1.0 if is_constant_feature(var, mean, col.size) else stats.yeojohnson(col, lmbda=None)[1]
        return lam

    def _quantiles(self, x: torch.Tensor, q: Sequence[float]) -> np.ndarray:
        """[len(q), F] NaN-aware linear-interpolation quantiles (numpy.nanquantile semantics)."""
        return column_quantiles(x, q, self.backend)

    # ------------------------------------------------------------------ streaming / distributed fit
    _STREAMABLE = ("no power transform, and no clipping before standard / min-max / max-abs scaling (the "
                   "moments of clipped data do not merge)")

    def _check_streamable(self):
        if self.nonlinear in ("yeo-johnson", "box-cox") or (
                self.clip is not None and self.scale in ("standard", "minmax", "maxabs")):
            raise ValueError(f"partial_fit and distributed fits need {self._STREAMABLE}; fit this policy in one call")

    def _needs_sketch(self) -> bool:
        return self.impute == "median" or self.clip in ("iqr", "quantile") or self.scale == "robust"

    _SKETCH_K = 2048  # rank error <= H n / k (kernelflow.ops.QuantileSketch); exact below k values

    def _chunk_state(self, df) -> dict:
        """Mergeable statistics of one chunk: row count, moments of the numeric columns (raw and
        after the nonlinear transform) and per-category counts. Runs anywhere (Dask workers)."""
        num = [self._orig_name(df, c) for c in self.numeric_columns_]
        x = self._numeric_block(df, num)
        F = x.shape[1]
        raw = ops.column_stats(x, backend=self.backend).cpu().numpy() if F else np.zeros((6, 0))
        f = ops.column_stats(self._nonlinear(x.to(torch.float64)), backend=self.backend).cpu().numpy() \
            if (F and self.nonlinear is not None) else raw
        cats = []
        for c in self.categorical_columns_:
            vc = df[self._orig_name(df, c)].value_counts(dropna=True)
            cats.append({"values": [_json_value(v) for v in vc.index], "counts": [int(n) for n in vc.to_numpy()]})
        st = {"rows": int(len(df)), "raw": raw, "f": f, "cats": cats}
        if self._needs_sketch():  # quantile policies stream through a mergeable sketch
            st["sketch"] = ops.QuantileSketch(F, k=self._SKETCH_K).update(x.cpu()).to_dict()
        return st

    @staticmethod
    def _merge_states(a: dict, b: dict) -> dict:
        import pandas as pd

        cats = []
        for ca, cb in zip(a["cats"], b["cats"]):
            sa = pd.Series(ca["counts"], index=pd.Index(ca["values"], dtype=object), dtype=np.int64)
            sb = pd.Series(cb["counts"], index=pd.Index(cb["values"], dtype=object), dtype=np.int64)
            m = sa.add(sb, fill_value=0).astype(np.int64)
            cats.append({"values": list(m.index), "counts": [int(n) for n in m.to_numpy()]})
        out = {"rows": a["rows"] + b["rows"], "raw": ops.merge_stats(a["raw"], b["raw"]),
               "f": ops.merge_stats(a["f"], b["f"]), "cats": cats}
        if "sketch" in a:
            out["sketch"] = ops.QuantileSketch.from_dict(a["sketch"]).merge(
                ops.QuantileSketch.from_dict(b["sketch"])).to_dict()
        return out

    def _start_stream(self, df) -> None:
        self._check_params()
        self._check_streamable()
        if len(df) == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        self._set_columns(df)

    def _set_columns(self, df) -> None:
        self.n_features_in_ = df.shape[1]
        if self._named_:
            self.feature_names_in_ = np.asarray([str(c) for c in df.columns], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.columns_in_ = [str(c) for c in df.columns]
        num, cat, pas = self._columns(df)
        self.numeric_columns_, self.categorical_columns_, self.passthrough_columns_ = (
            [str(c) for c in num], [str(c) for c in cat], [str(c) for c in pas])

    def partial_fit(self, X, y=None):
        """Update the fit with one chunk (e.g. a Parquet row group). Moments merge exactly
        (Chan), category counts add, so chunked fits equal one-shot fits."""
        df, named = _as_frame(X)
        if not hasattr(self, "_stream_"):
            self._named_ = named
            self._start_stream(df)
            state = self._chunk_state(df)
        else:
            self._check_frame(df)
            state = self._merge_states(self._stream_, self._chunk_state(df))
        self._finish_stream(state)
        return self

    def _finish_stream(self, st: dict) -> None:
        """Turn merged chunk statistics into the fitted parameters."""
        import pandas as pd

        self._stream_ = st
        raw, fs, n_rows = st["raw"], st["f"], st["rows"]
        F = raw.shape[1]
        if np.any(n_rows - raw[0] - raw[1] > 0):
            bad = [self.numeric_columns_[j] for j in np.flatnonzero(n_rows - raw[0] - raw[1] > 0)]
            raise ValueError(f"numeric columns {bad[:10]} contain infinity; clip or replace it before fitting")
        if self.impute is not None and np.any(raw[0] == 0):
            raise ValueError(f"numeric columns {[self.numeric_columns_[j] for j in np.flatnonzero(raw[0] == 0)]} "
                             "have no observed value to impute from")
        k = n_rows - raw[0]  # missing values per column
        sketch = ops.QuantileSketch.from_dict(st["sketch"]) if "sketch" in st else None
        if self.impute == "mean":
            fill = raw[2].copy()
        elif self.impute == "median":
            fill = np.asarray(sketch.quantile([0.5]), dtype=np.float64).reshape(-1)
        else:
            fill = np.full(F, float(self.fill_value) if self.impute else np.nan)
        self.fill_ = fill
        self.indicator_columns_ = [c for c, nn in zip(self.numeric_columns_, raw[1]) if nn > 0] if self.add_indicator else []
        self.lambdas_ = np.zeros(F)
        # the imputed data: moments in closed form (k copies of the fill merged in), quantiles from
        # the sketch with the same k copies added
        filled = np.stack([k, np.zeros(F), fill, np.zeros(F), np.where(k > 0, fill, np.inf), np.where(k > 0, fill, -np.inf)])
        imputed = ops.merge_stats(raw, filled) if self.impute is not None else raw
        if sketch is not None and self.impute is not None and k.max() > 0:
            block = np.full((int(k.max()), F), np.nan)
            for j in range(F):
                block[: int(k[j]), j] = fill[j]
            sketch.update(block)
        lo, hi = np.full(F, -np.inf), np.full(F, np.inf)
        if self.clip == "zscore":
            std = np.sqrt(imputed[3] / np.maximum(imputed[0], 1))
            lo, hi = imputed[2] - self.clip_k * std, imputed[2] + self.clip_k * std
        elif self.clip == "iqr":
            q1, q3 = np.asarray(sketch.quantile([0.25, 0.75]), dtype=np.float64).reshape(2, F)
            lo, hi = q1 - self.clip_k * (q3 - q1), q3 + self.clip_k * (q3 - q1)
        elif self.clip == "quantile":
            lo, hi = np.asarray(sketch.quantile(list(self.clip_quantiles)), dtype=np.float64).reshape(2, F)
        self.clip_lo_, self.clip_hi_ = lo, hi
        if self.scale == "robust":
            # clipping and log1p / sqrt are monotone: the quantiles of the transformed data are the
            # transformed quantiles
            qs = np.clip(np.asarray(sketch.quantile([0.25, 0.5, 0.75]), dtype=np.float64).reshape(3, F), lo, hi)
            q1, med, q3 = self._nonlinear(torch.from_numpy(qs)).numpy()
            self.shift_, self.inv_scale_, self.offset_ = med, 1.0 / handle_zeros_in_scale(q3 - q1), np.zeros(F)
        else:
            if self.impute is not None:  # k imputed copies of f(fill) merged in closed form
                ff = self._nonlinear(torch.from_numpy(fill)).numpy()
                fs = ops.merge_stats(fs, np.stack([k, np.zeros(F), ff, np.zeros(F), np.where(k > 0, ff, np.inf),
                                                   np.where(k > 0, ff, -np.inf)]))
            self._scale_from_stats(fs)
        self._cat_plans = []
        for c, cs in zip(self.categorical_columns_, st["cats"]):
            counts = pd.Series(cs["counts"], index=pd.Index(cs["values"], dtype=object), dtype=np.int64)
            if counts.empty:
                raise ValueError(f"categorical column {c!r} has no observed value to impute from")
            missing = n_rows - int(counts.sum())
            fill_c = self.cat_fill_value if self.cat_impute == "constant" else sorted(counts[counts == counts.max()].index)[0]
            if missing:
                counts = counts.add(pd.Series({fill_c: missing}, dtype=np.int64), fill_value=0).astype(np.int64)
            try:
                counts = counts.sort_index()
            except TypeError as e:
                raise TypeError(f"categorical column {c!r} mixes value types that cannot be sorted ({e})") from None
            plan = self._plan_column(c, np.asarray(counts.index, dtype=object), counts.to_numpy(), n_rows)
            plan.fill, plan.counts = fill_c, counts.to_numpy()
            self._cat_plans.append(plan)
        self._layout()

    def _scale_from_stats(self, st: np.ndarray) -> None:
        F = st.shape[1]
        shift, inv, off = np.zeros(F), np.ones(F), np.zeros(F)
        n, mean, m2, mn, mx = st[0], st[2], st[3], st[4], st[5]
        if self.scale == "standard":
            var = m2 / np.maximum(n, 1)
            scale = handle_zeros_in_scale(np.sqrt(var), is_constant_feature(var, mean, n))
            shift, inv = mean, 1.0 / scale
        elif self.scale == "minmax":
            shift, inv = mn, 1.0 / handle_zeros_in_scale(mx - mn)
        elif self.scale == "maxabs":
            inv = 1.0 / handle_zeros_in_scale(np.maximum(np.abs(mn), np.abs(mx)))
        self.shift_, self.inv_scale_, self.offset_ = shift, inv, off

    def fit_dask(self, ddf):
        """Fit on a Dask DataFrame: each partition's statistics are computed where it lives and
        merged exactly (same policies as partial_fit). Returns self."""
        import dask

        self._named_ = True
        if hasattr(self, "_stream_"):
            del self._stream_
        head = ddf.head(1, npartitions=-1)
        self._start_stream(head)
        parts = ddf.to_delayed()
        states = dask.compute(*[dask.delayed(self._chunk_state)(p) for p in parts])
        st = states[0]
        for other in states[1:]:
            st = self._merge_states(st, other)
        self._finish_stream(st)
        return self

    def transform_dask(self, ddf):
        """Transform a Dask DataFrame partition by partition (a pandas DataFrame per partition)."""
        import pandas as pd

        check_is_fitted(self, "n_features_out_")
        names = list(self.get_feature_names_out())
        meta = pd.DataFrame({n: pd.Series([], dtype=np.float32) for n in names})

        def part(df):
            return pd.DataFrame(tensor_to_numpy(self._transform_frame(df)), columns=names, index=df.index)

        return ddf.map_partitions(part, meta=meta)

    # ------------------------------------------------------------------ categories
    def _fit_categorical(self, df, cols) -> None:
        self._cat_plans = []
        for c in cols:
            enc = ops.encode_strings(df[c])  # one hash pass; categories sorted like scikit-learn's
            cats, counts = list(enc.categories), enc.counts.astype(np.int64)
            if self.cat_impute == "constant":
                fill = self.cat_fill_value
            else:
                if not cats:
                    raise ValueError(f"categorical column {c!r} has no observed value to impute from")
                fill = cats[int(np.argmax(counts))]  # ties: the smallest value, like SimpleImputer
            if enc.n_missing:
                if fill in cats:
                    counts[cats.index(fill)] += enc.n_missing
                else:
                    try:
                        order = sorted(cats + [fill])
                    except TypeError as e:
                        raise TypeError(f"categorical column {c!r}: fill value {fill!r} cannot be sorted "
                                        f"with its categories ({e})") from None
                    new = dict(zip(cats, counts.tolist()))
                    new[fill] = enc.n_missing
                    cats, counts = order, np.asarray([new[v] for v in order], dtype=np.int64)
            cats = np.asarray(cats, dtype=object)
            plan = self._plan_column(str(c), cats, counts, len(df))
            plan.fill, plan.counts = fill, counts
            self._cat_plans.append(plan)

    def _infrequent(self, counts: np.ndarray, n: int) -> np.ndarray:
        """scikit-learn's OneHotEncoder rule for infrequent categories (indices)."""
        mf, mc = self.min_frequency, self.max_categories
        if isinstance(mf, numbers.Integral):
            mask = counts < mf
        elif isinstance(mf, numbers.Real):
            mask = counts < n * mf
        else:
            mask = np.zeros(counts.shape[0], dtype=bool)
        n_current = counts.size - mask.sum() + 1
        if mc is not None and mc < n_current:
            keep = mc - 1
            if keep == 0:
                mask[:] = True
            else:
                mask[np.argsort(counts, kind="mergesort")[:-keep]] = True
        return np.flatnonzero(mask)

    def _plan_column(self, name, cats, counts, n) -> _CatPlan:
        k = len(cats)
        if self.encode == "ordinal":
            return _CatPlan(name, cats, np.arange(k, dtype=np.int64), 1, [name])
        infreq = self._infrequent(counts, n) if (self.min_frequency is not None or self.max_categories is not None) else np.array([], dtype=np.int64)
        frequent = np.setdiff1d(np.arange(k), infreq)
        slots = np.full(k, -1, dtype=np.int64)
        slots[frequent] = np.arange(frequent.size)
        names = [f"{name}_{cats[i]}" for i in frequent]
        width = frequent.size
        if infreq.size:
            slots[infreq] = width
            names.append(f"{name}_infrequent_sklearn")
            width += 1
        # drop: scikit-learn drops the first category (or the infrequent column when it is first)
        drop_idx = None
        if self.onehot_drop == "first" or (self.onehot_drop == "if_binary" and width == 2):
            drop_idx = 0
        infrequent_slot = width - 1 if infreq.size else -1
        if drop_idx is not None and width > 0:
            dropped = slots == drop_idx
            slots = np.where(dropped, -1, np.where(slots > drop_idx, slots - 1, slots))
            infrequent_slot = -1 if infrequent_slot == drop_idx else infrequent_slot - (infrequent_slot > drop_idx)
            names.pop(drop_idx)
            width -= 1
        return _CatPlan(name, cats, slots, width, names, cats[infreq] if infreq.size else None, int(infrequent_slot))

    # ------------------------------------------------------------------ layout
    def _layout(self) -> None:
        Fn = len(self.numeric_columns_)
        names = [f"num__{c}" for c in self.numeric_columns_]
        ind = [f"ind__missingindicator_{c}" for c in self.indicator_columns_]
        offs, w = [], Fn + len(ind)
        cat_names = []
        for p in self._cat_plans:
            offs.append(w)
            w += p.width
            cat_names += [f"cat__{n}" for n in p.names]
        self.cat_offsets_ = np.asarray(offs, dtype=np.int64)
        self._pass_offset = w
        w += len(self.passthrough_columns_)
        self.n_features_out_ = w
        self._feature_names_out = np.asarray(
            names + ind + cat_names + [f"remainder__{c}" for c in self.passthrough_columns_], dtype=object)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_features_out_")
        return self._feature_names_out.copy()

    # ------------------------------------------------------------------ transform
    def encode_categories(self, X) -> torch.Tensor:
        """Category codes [N, Fc] int32 of the categorical columns (index into each column's
        categories; -1 for unknown; missing values take the imputed category), computed on the
        host by Arrow's hash kernels (no per-value Python)."""
        check_is_fitted(self, "n_features_out_")
        df, _ = _as_frame(X)
        codes = np.empty((len(df), len(self._cat_plans)), dtype=np.int32)

        def one(j):
            codes[:, j] = _lookup(df[self._orig_name(df, self._cat_plans[j].name)], self._cat_plans[j])

        if len(df) >= 100_000 and len(self._cat_plans) > 1:  # Arrow's hash kernels release the GIL
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(len(self._cat_plans), os.cpu_count() or 1)) as pool:
                list(pool.map(one, range(len(self._cat_plans))))
        else:
            for j in range(len(self._cat_plans)):
                one(j)
        return torch.from_numpy(codes)

    def inputs(self, X, dtype=torch.float32) -> "PipelineInputs":
        """The model-input blocks of a table, as ``to_module()`` and the exported ONNX graph take
        them: ``num`` [N, n_numeric] (``dtype``, NaN = missing), ``cat`` [N, n_categorical] int64
        category codes (-1 = unknown) and ``passthrough`` [N, n_passthrough] (``dtype``; None when
        the pipeline has no passthrough columns). ``module(*pre.inputs(df))`` equals
        ``pre.transform(df)``; strings are encoded here, on the host."""
        check_is_fitted(self, "n_features_out_")
        df, _ = _as_frame(X)
        self._check_frame(df)
        num = self._host_numeric_block(df, [self._orig_name(df, c) for c in self.numeric_columns_]).to(dtype)
        cat = self.encode_categories(df).to(torch.int64)
        pas = None
        if self.passthrough_columns_:
            pas = self._host_numeric_block(df, [self._orig_name(df, c) for c in self.passthrough_columns_]).to(dtype)
        return PipelineInputs(num, cat, pas)

    def _orig_name(self, df, name):
        for c in df.columns:
            if str(c) == name:
                return c
        raise ValueError(f"column {name!r} seen in fit is missing from X")

    def _check_frame(self, df):
        if self._named_:
            missing = [c for c in self.columns_in_ if c not in {str(x) for x in df.columns}]
            if missing:
                raise ValueError(f"columns {missing[:10]} seen in fit are missing from X")
        elif df.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {df.shape[1]} features, but Preprocessor is expecting {self.n_features_in_} features as input.")

    def _transform_frame(self, df, out: torch.Tensor | None = None) -> torch.Tensor:
        self._check_frame(df)
        if len(df) == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        cols = [self._orig_name(df, c) for c in self.numeric_columns_ + self.passthrough_columns_]
        xnum = self._numeric_block(df, cols)
        codes = self.encode_categories(df).to(xnum.device, non_blocking=True)
        return self._run(xnum, codes, _out_dtype(self.dtype, "dtype"), out)

    def table_spec(self):
        """The fused kernel's layout (``kernelflow.ops.TableSpec``) for the fitted plan, on the CPU."""
        check_is_fitted(self, "n_features_out_")
        cache = getattr(self, "_spec_cache", None)
        if cache is not None and cache[0] is self._cat_plans:
            return cache[1]
        Fn, Fp = len(self.numeric_columns_), len(self.passthrough_columns_)
        fn = ops.FN_CODES[self.nonlinear]
        num = np.vstack([ops.transform_params(Fn, fill=self.fill_, lo=self.clip_lo_, hi=self.clip_hi_, shift=self.shift_,
                                              inv_scale=self.inv_scale_, offset=self.offset_), np.full((1, Fn), float(fn)),
                         np.asarray(self.lambdas_, dtype=np.float64).reshape(1, Fn)])
        passthrough = np.vstack([ops.transform_params(Fp), np.zeros((2, Fp))])  # identity: NaN stays NaN
        params = np.hstack([num, passthrough])
        num_out = list(range(Fn)) + list(range(self._pass_offset, self._pass_offset + Fp))
        ind_src = [self.numeric_columns_.index(c) for c in self.indicator_columns_]
        ind_out = list(range(Fn, Fn + len(ind_src)))
        cats = []
        for j, p in enumerate(self._cat_plans):
            unknown_slot = p.infrequent_slot if self.handle_unknown == "infrequent_if_exist" else -1
            cats.append(dict(off=int(self.cat_offsets_[j]), width=p.width, mode=self.encode, slots=p.slots,
                             unknown_slot=unknown_slot, unknown_value=float(self.unknown_value)))
        spec = ops.TableSpec.build(self.n_features_out_, params, num_out, ind_src, ind_out, cats)
        self._spec_cache = (self._cat_plans, spec)
        return spec

    def _run(self, xnum: torch.Tensor, codes: torch.Tensor, dt: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
        """ONE kernel launch writes the whole [N, W] output (numeric, indicators, categorical,
        passthrough); xnum here holds the numeric columns followed by the passthrough columns."""
        N = xnum.shape[0]
        if out is not None:
            if out.shape != (N, self.n_features_out_) or out.dtype != dt or out.device != xnum.device or out.stride(1) != 1:
                raise ValueError(f"out must be a ({N}, {self.n_features_out_}) {dt} array on {xnum.device} "
                                 f"with unit column stride, got {tuple(out.shape)} {out.dtype} on {out.device}")
        elif xnum.device.type == "cpu" and dt in (torch.float32, torch.float64):
            # numpy maps large outputs with huge pages: far fewer page faults than torch's allocator
            out = torch.from_numpy(np.empty((N, self.n_features_out_), dtype=np.float32 if dt == torch.float32 else np.float64))
        else:
            out = torch.empty((N, self.n_features_out_), dtype=dt, device=xnum.device)
        if self.handle_unknown == "error" and codes.numel():
            bad = (codes < 0).any(0)
            if bool(bad.any()):
                names = [p.name for p, b in zip(self._cat_plans, bad.tolist()) if b]
                raise ValueError(f"Found unknown categories in columns {names} during transform")
        spec = self.table_spec()
        if spec.params.device != xnum.device:
            spec = spec.to(xnum.device)
        return ops.table_transform(xnum, codes.to(xnum.device), spec, out=out, backend=self.backend)

    def transform(self, X, out=None):
        """The [N, W] model input. ``out`` (a numpy array or torch tensor of that shape and the
        fitted dtype) is written in place and returned: reusing one buffer across batches avoids
        allocating (and page-faulting) a new output every call."""
        check_is_fitted(self, "n_features_out_")
        kind = kind_of(X) if isinstance(X, torch.Tensor) else "numpy"
        df, _ = _as_frame(X)
        if out is not None:
            buf = torch.from_numpy(out) if isinstance(out, np.ndarray) else out
            if not isinstance(buf, torch.Tensor):
                raise TypeError(f"out must be a numpy array or a torch tensor, got {type(out).__name__}")
            self._transform_frame(df, buf)
            return out
        out = self._transform_frame(df)
        if getattr(self, "_kf_output", None) == "torch" or kind == "torch" or out.device.type != "cpu":
            return out
        return tensor_to_numpy(out)  # scikit-learn's set_output wrapper makes pandas / polars frames

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Save the fitted preprocessor (safetensors + JSON, never pickle); ``kernelflow.load`` reads it."""
        check_is_fitted(self, "n_features_out_")
        from kernelflow.io import save

        save(self, path)

    _ARRAYS = ("fill_", "clip_lo_", "clip_hi_", "shift_", "inv_scale_", "offset_", "lambdas_", "cat_offsets_")
    _LISTS = ("columns_in_", "numeric_columns_", "categorical_columns_", "passthrough_columns_", "indicator_columns_")

    def _get_state(self) -> dict:
        st = {k: getattr(self, k) for k in self._ARRAYS + self._LISTS}
        st.update(n_features_in_=self.n_features_in_, n_features_out_=self.n_features_out_, _named_=self._named_,
                  _pass_offset=self._pass_offset, _feature_names_out=self._feature_names_out)
        if hasattr(self, "feature_names_in_"):
            st["feature_names_in_"] = self.feature_names_in_
        st["_cat_plans"] = [
            {"name": p.name, "categories": [_json_value(v) for v in p.categories], "slots": p.slots.tolist(),
             "width": p.width, "names": list(p.names), "infrequent_slot": p.infrequent_slot,
             "infrequent": None if p.infrequent is None else [_json_value(v) for v in p.infrequent],
             "fill": _json_value(p.fill), "counts": None if p.counts is None else [int(n) for n in p.counts]}
            for p in self._cat_plans]
        return st

    def _set_state(self, st: dict) -> None:
        for k in self._ARRAYS:
            v = np.asarray(st[k])
            if v.dtype.kind not in "iuf":
                raise ValueError(f"{k} must be numeric")
            setattr(self, k, v)
        for k in self._LISTS:
            v = st[k]
            if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
                raise ValueError(f"{k} must be a list of column names")
            setattr(self, k, v)
        for k in ("n_features_in_", "n_features_out_", "_pass_offset"):
            if not isinstance(st[k], int) or st[k] < 0:
                raise ValueError(f"{k} must be a non-negative int")
            setattr(self, k, st[k])
        self._named_ = bool(st["_named_"])
        self._feature_names_out = np.asarray(st["_feature_names_out"], dtype=object)
        if "feature_names_in_" in st:
            self.feature_names_in_ = np.asarray(st["feature_names_in_"], dtype=object)
        Fn = len(self.numeric_columns_)
        if any(np.asarray(getattr(self, k)).shape != (Fn,) for k in self._ARRAYS[:-1]):
            raise ValueError("numeric parameters do not match the numeric columns")
        plans = []
        for d in st["_cat_plans"]:
            cats = np.asarray(d["categories"], dtype=object)
            slots = np.asarray(d["slots"], dtype=np.int64)
            limit = len(cats) if self.encode == "ordinal" else d["width"]
            if slots.shape != cats.shape or (slots.size and (slots.max() >= max(limit, 1) or slots.min() < -1)):
                raise ValueError(f"category table of column {d['name']!r} is inconsistent")
            plans.append(_CatPlan(str(d["name"]), cats, slots, int(d["width"]), [str(n) for n in d["names"]],
                                  None if d["infrequent"] is None else np.asarray(d["infrequent"], dtype=object),
                                  int(d["infrequent_slot"]), d["fill"],
                                  None if d.get("counts") is None else np.asarray(d["counts"], dtype=np.int64)))
        self._cat_plans = plans
        if len(plans) != len(self.categorical_columns_) or self.cat_offsets_.shape != (len(plans),):
            raise ValueError("categorical plans do not match the categorical columns")
        if len(self._feature_names_out) != self.n_features_out_:
            raise ValueError("feature names do not match the output width")

    # ------------------------------------------------------------------ torch module
    def to_module(self):
        """The fitted pipeline as ``kernelflow.nn.Preprocess``: an nn.Module with the parameters as
        buffers, taking the numeric tensor (with NaN) and the category-code tensor
        (``encode_categories``); works under torch.compile(fullgraph=True) on CPU and CUDA."""
        from kernelflow.nn.preprocess import Preprocess

        check_is_fitted(self, "n_features_out_")
        return Preprocess.from_preprocessor(self)

    # ------------------------------------------------------------------ scikit-learn equivalent
    def to_sklearn(self):
        """The scikit-learn ColumnTransformer that computes the same output (unfitted)."""
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import MissingIndicator, SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import (FunctionTransformer, MaxAbsScaler, MinMaxScaler, OneHotEncoder,
                                           OrdinalEncoder, PowerTransformer, RobustScaler, StandardScaler)

        check_is_fitted(self, "n_features_out_")
        if self.clip is not None:
            raise NotImplementedError("scikit-learn has no outlier-clipping step; use kernelflow's OutlierClipper")
        steps = []
        if self.impute is not None:
            steps.append(SimpleImputer(strategy=self.impute, fill_value=self.fill_value))
        if self.nonlinear in ("log1p", "sqrt"):
            steps.append(FunctionTransformer(np.log1p if self.nonlinear == "log1p" else np.sqrt,
                                             feature_names_out="one-to-one"))
        elif self.nonlinear is not None:
            steps.append(PowerTransformer(method=self.nonlinear, standardize=False))
        scaler = {"standard": StandardScaler, "minmax": MinMaxScaler, "maxabs": MaxAbsScaler, "robust": RobustScaler}
        if self.scale is not None:
            steps.append(scaler[self.scale]())
        transformers = []
        if self.numeric_columns_:
            transformers.append(("num", make_pipeline(*steps) if steps else "passthrough", self.numeric_columns_))
        if self.indicator_columns_:
            transformers.append(("ind", MissingIndicator(features="all"), self.indicator_columns_))
        if self._cat_plans:
            cat_steps = [_CatImputer(self.cat_impute, self.cat_fill_value)]
            if self.encode == "onehot":
                cat_steps.append(OneHotEncoder(handle_unknown=self.handle_unknown, min_frequency=self.min_frequency,
                                               max_categories=self.max_categories, drop=self.onehot_drop,
                                               sparse_output=False))
            else:
                cat_steps.append(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=self.unknown_value))
            transformers.append(("cat", make_pipeline(*cat_steps), self.categorical_columns_))
        if self.passthrough_columns_:
            transformers.append(("remainder", "passthrough", self.passthrough_columns_))
        return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)


class _CatImputer(TransformerMixin, BaseEstimator):
    """Categorical imputation for the scikit-learn equivalent (object columns; NaN and None)."""

    def __init__(self, strategy="most_frequent", fill_value="missing"):
        self.strategy = strategy
        self.fill_value = fill_value

    def fit(self, X, y=None):
        import pandas as pd

        df = pd.DataFrame(X)
        self.fills_ = []
        for c in df.columns:
            if self.strategy == "constant":
                self.fills_.append(self.fill_value)
            else:
                vc = df[c].value_counts(dropna=True)
                self.fills_.append(sorted(vc[vc == vc.max()].index)[0])
        self.feature_names_in_ = np.asarray([str(c) for c in df.columns], dtype=object)
        return self

    def transform(self, X):
        import pandas as pd

        df = pd.DataFrame(X).astype(object)
        for c, f in zip(df.columns, self.fills_):
            df[c] = df[c].where(df[c].notna(), f)
        return df

    def get_feature_names_out(self, input_features=None):
        return self.feature_names_in_
