"""Shared machinery of kernelflow's scikit-learn-compatible estimators.

Inputs: numpy / pandas / polars / pyarrow go through scikit-learn's own validation (feature
names, dtypes, NaN/inf rules) and reach the kernels as zero-copy torch views; torch tensors
(CPU or CUDA) and CuPy arrays are validated here and stay on their device. Outputs mirror the
input kind unless ``set_output`` asks for "pandas", "polars" or "torch".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from kernelflow import ops
from kernelflow._array import from_cupy, kind_of, numpy_to_tensor, out_dtype, pyarrow_to_pandas, tensor_to_numpy, to_cupy
from kernelflow.ops.sparse import as_compressed, is_sparse
from kernelflow.preprocessing._params import handle_zeros_in_scale, is_constant_feature  # noqa: F401 (re-exported)

_FLOATS = (torch.float32, torch.float64)

try:  # scikit-learn >= 1.9: the estimator callback API (set_callbacks, fit task hooks)
    from sklearn.callback import CallbackSupportMixin as _CallbackSupportMixin
    from sklearn.callback import with_callbacks
except ImportError:  # pragma: no cover - older scikit-learn
    class _CallbackSupportMixin:  # type: ignore[no-redef]
        pass

    def with_callbacks(method):  # type: ignore[no-redef]
        return method


class _NoCallbacks:
    def call_on_fit_task_begin(self, **kwargs):
        pass

    def call_on_fit_task_end(self, **kwargs):
        pass


class CallbackMixin(_CallbackSupportMixin):
    """scikit-learn's callback API: fit methods report one task (begin / end) to the callbacks."""

    def _callbacks_begin(self, X, y, sample_weight=None):
        init = getattr(self, "_init_callback_context", None)
        ctx = init() if init is not None else _NoCallbacks()
        ctx.call_on_fit_task_begin(estimator=self, X=X, y=y, metadata={"sample_weight": sample_weight})
        return ctx

    def _callbacks_end(self, ctx, X, y, sample_weight=None):
        ctx.call_on_fit_task_end(estimator=self, X=X, y=y, metadata={"sample_weight": sample_weight},
                                 reconstruction_attributes={})


SPARSE_CENTER_MSG = ("Cannot center sparse matrices: pass `with_mean=False` instead. See docstring for motivation "
                     "and alternatives.")


def set_init_params(est, params: dict) -> None:
    """scikit-learn's constructor contract: every argument stored unchanged under its own name
    (``set_init_params(self, locals())`` as the whole body of ``__init__``)."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(est, name, value)


class TorchOutputMixin:
    """set_output with "torch" beside scikit-learn's "default", "pandas" and "polars"."""

    def set_output(self, *, transform: str | None = None):
        """scikit-learn's set_output ("default", "pandas", "polars") plus "torch": return torch
        tensors (on the input's device) whatever the input kind."""
        if transform == "torch":
            super().set_output(transform="default")
            self._kf_output = "torch"
            return self
        self._kf_output = None
        return super().set_output(transform=transform)


class KernelTransformer(TorchOutputMixin, TransformerMixin, BaseEstimator):
    """Base of the column-wise transformers: validation, stats, the fused transform, output kinds."""

    # -- input ---------------------------------------------------------------------------
    def _validate(self, X: Any, reset: bool, accept_sparse: Any = False, copy: bool = False) -> tuple[Any, str]:
        """(data, kind): a float torch tensor for dense input (kind "numpy", "torch", "cupy"), the
        validated scipy CSR / CSC matrix (kind "sparse") or torch sparse tensor ("torch_sparse").
        copy=True returns data the caller may overwrite."""
        kind = kind_of(X)
        if kind == "torch" and X.layout != torch.strided:
            return self._validate_torch_sparse(X, reset, accept_sparse, copy), "torch_sparse"
        if kind in ("torch", "cupy"):
            t = X if kind == "torch" else from_cupy(X)
            t = self._validate_tensor(t, reset)
            return (t.clone() if copy else t), kind
        X = pyarrow_to_pandas(X)
        Xv = validate_data(self, X, reset=reset, accept_sparse=accept_sparse,
                           dtype=[np.float64, np.float32, np.float16], ensure_all_finite="allow-nan", copy=copy)
        if is_sparse(Xv):
            return Xv, "sparse"
        if Xv.dtype == np.float16:  # computed in float32, returned as float16 (scikit-learn keeps the dtype)
            return numpy_to_tensor(Xv.astype(np.float32)), "numpy16"
        return numpy_to_tensor(Xv), "numpy"

    def _validate_torch_sparse(self, X: torch.Tensor, reset: bool, accept_sparse: Any, copy: bool) -> torch.Tensor:
        if not accept_sparse:
            raise TypeError(f"Sparse data was passed for X, but dense data is required ({type(self).__name__} "
                            "does not take sparse input). Use '.to_dense()' to convert to a dense tensor.")
        formats = (accept_sparse,) if isinstance(accept_sparse, str) else tuple(accept_sparse)
        if X.dim() != 2:
            raise ValueError(f"Expected 2D input X of shape (n_samples, n_features), got shape {tuple(X.shape)}")
        if X.layout == torch.sparse_csr and "csr" not in formats or X.layout == torch.sparse_csc and "csc" not in formats \
                or X.layout not in (torch.sparse_csr, torch.sparse_csc):
            X = X.to_sparse_csr() if "csr" in formats else X.to_sparse_csc()
        X = X.detach()
        if X.dtype not in _FLOATS:
            X = X.to(torch.float64 if X.dtype in (torch.int64, torch.int32) else torch.float32)
        elif copy:
            X = X.clone()
        if bool(torch.isinf(X.values()).any()):
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
        self._validate_tensor(torch.empty((X.shape[0], X.shape[1]), device="meta"), reset)
        return X

    def _validate_tensor(self, t: torch.Tensor, reset: bool) -> torch.Tensor:
        if t.device.type != "meta" and t.requires_grad and reset:
            t = t.detach()  # fitting learns statistics, not a function of X: no graph to record
        if t.dim() != 2:
            raise ValueError(f"Expected 2D input X of shape (n_samples, n_features), got shape {tuple(t.shape)}")
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"X must hold real numbers, got dtype {t.dtype}")
        if t.dtype not in _FLOATS:
            t = t.to(torch.float64 if t.dtype in (torch.int64, torch.int32) else torch.float32)
        if t.shape[0] < 1:
            raise ValueError(f"Found array with 0 sample(s) (shape={tuple(t.shape)}) while a minimum of 1 is required.")
        if reset:
            self.n_features_in_ = int(t.shape[1])
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif t.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {t.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        return t

    def _sample_weight(self, sample_weight: Any, X: Any, kind: str) -> np.ndarray | torch.Tensor | None:
        """scikit-learn's checks (_check_sample_weight: shape, finiteness, scalar broadcast); a
        torch tensor comes back for torch input (on its device)."""
        if sample_weight is None:
            return None
        if kind in ("torch", "cupy", "torch_sparse"):
            n = X.shape[0]
            w = sample_weight.detach().cpu().numpy() if isinstance(sample_weight, torch.Tensor) else sample_weight
            w = _check_sample_weight(w, np.empty((n, 0)), dtype=np.float64)
            return torch.from_numpy(w).to(X.device)
        dt = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        return _check_sample_weight(sample_weight, X, dtype=dt)

    def _transform_any(self, X: Any, copy: bool | None, accept_sparse: Any, dense_params, sparse_params=None,
                       sparse_error: str | None = None):
        """Validate X (reset=False) and apply the fused transform: dense_params() [6, F] for dense
        input, sparse_params() [4, F] for sparse input (None: sparse rejected; sparse_error: the
        message when the fitted estimator cannot keep sparsity). copy=False (or self.copy=False)
        overwrites X when it already is a float array and returns X itself, as scikit-learn."""
        copy = getattr(self, "copy", True) if copy is None else copy
        kind = kind_of(X)
        if kind == "numpy" and not is_sparse(X) and not copy and getattr(self, "dtype", None) is None:
            X = pyarrow_to_pandas(X)
            Xv = validate_data(self, X, reset=False, accept_sparse=accept_sparse,
                               dtype=[np.float64, np.float32, np.float16], ensure_all_finite="allow-nan", copy=False,
                               force_writeable=True)
            if isinstance(Xv, np.ndarray) and Xv.flags.writeable:
                if Xv.dtype == np.float16:
                    Xv[...] = tensor_to_numpy(self._apply(numpy_to_tensor(Xv.astype(np.float32)), dense_params()))
                    return Xv
                t = numpy_to_tensor(Xv)
                if t.data_ptr() == Xv.__array_interface__["data"][0] or Xv.size == 0:
                    self._apply(t, dense_params(), inplace=True)
                    return Xv
            if is_sparse(Xv):
                return self._transform_any(Xv, True, accept_sparse, dense_params, sparse_params, sparse_error)
        t, kind = self._validate(X, reset=False, accept_sparse=accept_sparse if sparse_params else False,
                                 copy=copy and is_sparse(X))
        if kind in ("sparse", "torch_sparse"):
            if sparse_error:
                raise ValueError(sparse_error)
            return self._output_sparse(t, sparse_params(), kind)
        if not copy and kind in ("torch", "cupy") and t.dtype in _FLOATS and getattr(self, "dtype", None) is None:
            return self._output(self._apply(t, dense_params(), inplace=True), kind)
        return self._output(self._apply(t, dense_params()), kind)

    # -- output --------------------------------------------------------------------------
    def _output_sparse(self, X: Any, params_apply: np.ndarray, kind: str, inplace: bool = True):
        """Apply ``sparse_column_apply`` to the stored values of X (already a private copy when
        the caller asked for one) and return it in its own kind."""
        if kind == "torch_sparse":
            c = as_compressed(X)
            vals = ops.sparse_column_apply(c, params_apply, backend=self.backend)
            if X.layout == torch.sparse_csr:
                return torch.sparse_csr_tensor(c.indptr, c.indices, vals, X.shape)
            return torch.sparse_csc_tensor(c.indptr, c.indices, vals, X.shape)
        c = as_compressed(X)
        ops.sparse_column_apply(c, params_apply, out=torch.from_numpy(X.data), backend=self.backend)
        return X

    def _output(self, t: torch.Tensor, kind: str):
        if getattr(self, "_kf_output", None) == "torch":
            return t
        if kind == "torch":
            return t
        if kind == "cupy":
            return to_cupy(t)
        if kind == "numpy16":
            return tensor_to_numpy(t.to(torch.float16))
        return tensor_to_numpy(t)

    def _out_dtype(self, t: torch.Tensor) -> torch.dtype:
        dt = getattr(self, "dtype", None)
        return t.dtype if dt is None else out_dtype(dt, "dtype")

    # -- kernels -------------------------------------------------------------------------
    def _stats(self, t: Any, sample_weight: Any = None) -> np.ndarray:
        """[6, F] float64 host array of column statistics (weighted when sample_weight is given;
        sparse input: implicit zeros included); rejects +-inf like scikit-learn. float64
        accumulation throughout on the CPU (the weighted kernel with unit weights: a corrected
        two-pass in float64, as scikit-learn, so constant columns get variance exactly 0)."""
        if is_sparse(t):
            return ops.sparse_column_stats(t, sample_weight, backend=self.backend).cpu().numpy()
        t = t.detach()
        if sample_weight is not None:
            s = ops.weighted_column_stats(t, sample_weight, backend=self.backend).cpu().numpy()
            if bool(torch.isinf(t).any()):
                raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
            return s
        if t.device.type == "cpu" and self.backend in ("auto", "cpu", None):
            s = ops.weighted_column_stats(t, None, backend=self.backend).cpu().numpy()
        else:
            s = ops.column_stats(t, backend=self.backend).cpu().numpy()
        n_inf = t.shape[0] - s[0] - s[1]
        if np.any(n_inf > 0):
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
        return s

    def _apply(self, t: torch.Tensor, params: np.ndarray, dtype: torch.dtype | None = None,
               inplace: bool = False) -> torch.Tensor:
        """The fused transform of t; inplace=True writes the result over t (same dtype, no
        gradient) and returns t, as scikit-learn's copy=False."""
        p = torch.as_tensor(params, dtype=torch.float64, device=t.device)
        dt = dtype or self._out_dtype(t)
        if inplace and dt == t.dtype and not t.requires_grad:
            if t.numel() and t.stride(1) == 1 and t.stride(0) >= t.shape[1]:
                return ops.numeric_transform(t, p, dt, backend=self.backend, out=t)  # elementwise: aliasing is safe
            t.copy_(ops.numeric_transform(t, p, dt, backend=self.backend))
            return t
        out = None
        if t.device.type == "cpu" and dt in (torch.float32, torch.float64) and not t.requires_grad:
            # numpy's allocator maps large outputs with huge pages: far fewer page faults than torch's
            out = torch.from_numpy(np.empty(tuple(t.shape), dtype=np.float32 if dt == torch.float32 else np.float64))
        return ops.numeric_transform(t, p, dt, backend=self.backend, out=out)

    # -- persistence (kernelflow.save / kernelflow.load: safetensors + JSON, never pickle) --
    def save(self, path) -> None:
        """Save the fitted estimator to ``path`` (safetensors + JSON); ``kernelflow.load`` reads it."""
        check_is_fitted(self)
        from kernelflow.io import save

        save(self, path)

    def _get_state(self) -> dict:
        return {k: v for k, v in vars(self).items()
                if (k.endswith("_") and not k.startswith("__")) or k in self._private_state}

    _private_state: tuple[str, ...] = ()

    def _set_state(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        n = getattr(self, "n_features_in_", None)
        if not isinstance(n, int) or n < 0:
            raise ValueError("n_features_in_ missing or invalid")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def check_fitted(est: BaseEstimator, attr: str) -> None:
    check_is_fitted(est, attr)


def column_quantiles(x: torch.Tensor, q, backend: str = "auto") -> np.ndarray:
    """[len(q), F] NaN-aware quantiles (numpy.nanquantile "linear" semantics) of x [N, F] through
    the kernelflow quantile op (exact selection on the data's device)."""
    return ops.column_quantiles(x, list(q), backend=backend).cpu().numpy()
