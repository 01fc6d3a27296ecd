"""``kernelflow.Preprocessor``: the estimator class (parameters, scikit-learn API, transform);
the work lives in the sibling modules (columns, fit, params, stats, categories, layout,
persistence, sklearn)."""

from __future__ import annotations

import numbers
import os
from typing import NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from kernelflow import ops
from kernelflow._array import check_out, kind_of, out_dtype as _out_dtype, tensor_to_numpy, writable_numpy_out
from kernelflow.io import persistable
from kernelflow.preprocessing._base import TorchOutputMixin, set_init_params
from kernelflow.preprocessing.preprocessor import columns, fit as _fit, layout, persistence
from kernelflow.preprocessing.preprocessor.categories import lookup
from kernelflow.preprocessing.preprocessor.stats import SKETCH_K

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

    Fitting: ``fit`` is the fit of one chunk with exact statistics; ``partial_fit`` (chunks, e.g.
    Parquet row groups), ``fit_dask`` and ``kernelflow.preprocessing.distributed.fit_preprocessor``
    merge the same statistics across chunks (see ``preprocessor/fit.py``).
    """

    _SKETCH_K = SKETCH_K
    _ARRAYS, _LISTS, _STATE_KEYS = persistence.ARRAYS, persistence.LISTS, persistence.STATE_KEYS

    def __init__(self, *, numeric="auto", categorical="auto", passthrough=(), drop=(),
                 impute="mean", fill_value=0.0, add_indicator=False,
                 clip=None, clip_k=3.0, clip_quantiles=(0.01, 0.99),
                 nonlinear=None, scale="standard",
                 cat_impute="most_frequent", cat_fill_value="missing", encode="onehot",
                 handle_unknown="ignore", min_frequency=None, max_categories=None, onehot_drop=None,
                 unknown_value=-1, dtype="float32", backend="auto", device=None):
        set_init_params(self, locals())

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
        mf = self.min_frequency
        if mf is not None and (isinstance(mf, (bool, np.bool_)) or not (
                (isinstance(mf, numbers.Integral) and mf >= 1) or (isinstance(mf, numbers.Real) and 0 < mf < 1))):
            raise ValueError(f"min_frequency must be an int >= 1 or a float in (0, 1), got {mf!r}")
        if self.max_categories is not None and (not isinstance(self.max_categories, numbers.Integral) or self.max_categories < 1):
            raise ValueError(f"max_categories must be an int >= 1, got {self.max_categories!r}")
        if self.encode == "ordinal" and self.handle_unknown == "infrequent_if_exist":
            raise ValueError("handle_unknown='infrequent_if_exist' needs encode='onehot'")
        _out_dtype(self.dtype, "dtype")

    # ------------------------------------------------------------------ fit (preprocessor/fit.py)
    def fit(self, X, y=None):
        """Fit on X: the exact statistics of one chunk."""
        self._check_params()
        _fit.fit(self, X)
        return self

    def partial_fit(self, X, y=None):
        """Update the fit with one chunk (e.g. a Parquet row group). Moments merge exactly
        (Chan), category counts add, quantiles go through a mergeable sketch, so chunked fits
        equal one-shot fits (quantiles within the sketch's rank-error bound)."""
        _fit.partial_fit(self, X)
        return self

    def fit_dask(self, ddf):
        """Fit on a Dask DataFrame: each partition's statistics are computed where it lives and
        merged exactly (same policies as partial_fit). Returns self."""
        _fit.fit_dask(self, ddf)
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

    # ------------------------------------------------------------------ columns
    def _numeric_block(self, df, cols) -> torch.Tensor:
        """[N, len(cols)] float32 (all float32 columns) or float64 tensor, on ``device``."""
        t = columns.numeric_block(df, cols)
        return t if self.device is None else t.to(self.device, non_blocking=True)

    def _orig_name(self, df, name):
        return self._orig_names(df, [name])[0]

    def _orig_names(self, df, names) -> list:
        """The frame's labels of the fitted column names (one dict, not a scan per column)."""
        if not self._named_:  # arrays: columns by position, as in fit
            if df.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {df.shape[1]} features, but Preprocessor is expecting "
                                 f"{self.n_features_in_} features as input.")
        m = columns.frame_names(df)
        missing = [n for n in names if n not in m]
        if missing:
            raise ValueError(f"columns {missing[:10]} seen in fit are missing from X")
        return [m[n] for n in names]

    def _check_frame(self, df):
        if self._named_:
            have = {str(x) for x in df.columns}
            missing = [c for c in self.columns_in_ if c not in have]
            if missing:
                raise ValueError(f"columns {missing[:10]} seen in fit are missing from X")
        elif df.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {df.shape[1]} features, but Preprocessor is expecting {self.n_features_in_} features as input.")

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_features_out_")
        return self._feature_names_out.copy()

    # ------------------------------------------------------------------ transform
    def encode_categories(self, X) -> torch.Tensor:
        """Category codes [N, Fc] int32 of the categorical columns (index into each column's
        categories; -1 for unknown; missing values take the imputed category), computed on the
        host by Arrow's hash kernels (no per-value Python)."""
        check_is_fitted(self, "n_features_out_")
        df, _ = columns.as_frame(X)
        codes = np.empty((len(df), len(self._cat_plans)), dtype=np.int32)
        cols = self._orig_names(df, [p.name for p in self._cat_plans])

        def one(j):
            codes[:, j] = lookup(df[cols[j]], self._cat_plans[j])

        if len(df) >= 100_000 and len(self._cat_plans) > 1:  # Arrow's hash kernels release the GIL
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(len(self._cat_plans), os.cpu_count() or 1)) as pool:
                list(pool.map(one, range(len(self._cat_plans))))
        else:
            for j in range(len(self._cat_plans)):
                one(j)
        return torch.from_numpy(codes)

    def inputs(self, X, dtype=torch.float32) -> PipelineInputs:
        """The model-input blocks of a table, as ``to_module()`` and the exported ONNX graph take
        them: ``num`` [N, n_numeric] (``dtype``, NaN = missing), ``cat`` [N, n_categorical] int64
        category codes (-1 = unknown) and ``passthrough`` [N, n_passthrough] (``dtype``; None when
        the pipeline has no passthrough columns). ``module(*pre.inputs(df))`` equals
        ``pre.transform(df)``; strings are encoded here, on the host."""
        check_is_fitted(self, "n_features_out_")
        df, _ = columns.as_frame(X)
        self._check_frame(df)
        num = columns.numeric_block(df, self._orig_names(df, self.numeric_columns_)).to(dtype)
        cat = self.encode_categories(df).to(torch.int64)
        pas = None
        if self.passthrough_columns_:
            pas = columns.numeric_block(df, self._orig_names(df, self.passthrough_columns_)).to(dtype)
        return PipelineInputs(num, cat, pas)

    def table_spec(self):
        """The fused kernel's layout (``kernelflow.ops.TableSpec``) for the fitted plan, on the CPU."""
        check_is_fitted(self, "n_features_out_")
        cache = getattr(self, "_spec_cache", None)
        if cache is not None and cache[0] is self._cat_plans:
            return cache[1]
        spec = layout.table_spec(self)
        self._spec_cache = (self._cat_plans, spec)
        return spec

    def _transform_frame(self, df, out: torch.Tensor | None = None) -> torch.Tensor:
        self._check_frame(df)
        if len(df) == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        xnum = self._numeric_block(df, self._orig_names(df, self.numeric_columns_ + self.passthrough_columns_))
        codes = self.encode_categories(df).to(xnum.device, non_blocking=True)
        return self._run(xnum, codes, _out_dtype(self.dtype, "dtype"), out)

    def _run(self, xnum: torch.Tensor, codes: torch.Tensor, dt: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
        """ONE kernel launch writes the whole [N, W] output (numeric, indicators, categorical,
        passthrough); xnum here holds the numeric columns followed by the passthrough columns."""
        N = xnum.shape[0]
        if out is not None:
            check_out(out, (N, self.n_features_out_), xnum.device, (dt,))
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
        df, _ = columns.as_frame(X)
        if out is not None:
            self._transform_frame(df, writable_numpy_out(out))
            return out
        out = self._transform_frame(df)
        if getattr(self, "_kf_output", None) == "torch" or kind == "torch" or out.device.type != "cpu":
            return out
        return tensor_to_numpy(out)  # scikit-learn's set_output wrapper makes pandas / polars frames

    # ------------------------------------------------------------------ persistence, conversions
    def save(self, path) -> None:
        """Save the fitted preprocessor (safetensors + JSON, never pickle); ``kernelflow.load`` reads it."""
        check_is_fitted(self, "n_features_out_")
        from kernelflow.io import save

        save(self, path)

    def _get_state(self) -> dict:
        return persistence.get_state(self)

    def _set_state(self, st: dict) -> None:
        persistence.set_state(self, st)

    def to_module(self):
        """The fitted pipeline as ``kernelflow.nn.Preprocess``: an nn.Module with the parameters as
        buffers, taking the numeric tensor (with NaN) and the category-code tensor
        (``encode_categories``); works under torch.compile(fullgraph=True) on CPU and CUDA."""
        from kernelflow.nn.preprocess import Preprocess

        check_is_fitted(self, "n_features_out_")
        return Preprocess.from_preprocessor(self)

    def to_sklearn(self):
        """The scikit-learn ColumnTransformer that computes the same output (unfitted); clipping is
        kernelflow's ``OutlierClipper`` (scikit-learn has none), so that pipeline holds one
        kernelflow step."""
        from kernelflow.preprocessing.preprocessor.sklearn import to_sklearn

        check_is_fitted(self, "n_features_out_")
        return to_sklearn(self)
