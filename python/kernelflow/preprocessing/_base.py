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
from sklearn.utils.validation import check_is_fitted, validate_data

from kernelflow import ops
from kernelflow._array import from_cupy, kind_of, numpy_to_tensor, out_dtype, pyarrow_to_pandas, tensor_to_numpy, to_cupy

_FLOATS = (torch.float32, torch.float64)


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
    def _validate(self, X: Any, reset: bool) -> tuple[torch.Tensor, str]:
        kind = kind_of(X)
        if kind in ("torch", "cupy"):
            t = X if kind == "torch" else from_cupy(X)
            t = self._validate_tensor(t, reset)
            return t, kind
        X = pyarrow_to_pandas(X)
        Xv = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan")
        return numpy_to_tensor(Xv), "numpy"

    def _validate_tensor(self, t: torch.Tensor, reset: bool) -> torch.Tensor:
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

    # -- output --------------------------------------------------------------------------
    def _output(self, t: torch.Tensor, kind: str):
        if getattr(self, "_kf_output", None) == "torch":
            return t
        if kind == "torch":
            return t
        if kind == "cupy":
            return to_cupy(t)
        return tensor_to_numpy(t)

    def _out_dtype(self, t: torch.Tensor) -> torch.dtype:
        dt = getattr(self, "dtype", None)
        return t.dtype if dt is None else out_dtype(dt, "dtype")

    # -- kernels -------------------------------------------------------------------------
    def _stats(self, t: torch.Tensor) -> np.ndarray:
        """[6, F] float64 host array of column statistics; rejects +-inf like scikit-learn."""
        s = ops.column_stats(t, backend=self.backend).cpu().numpy()
        n_inf = t.shape[0] - s[0] - s[1]
        if np.any(n_inf > 0):
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
        return s

    def _apply(self, t: torch.Tensor, params: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
        p = torch.as_tensor(params, dtype=torch.float64, device=t.device)
        dt = dtype or self._out_dtype(t)
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


def column_quantiles(x: torch.Tensor, q, backend: str = "auto") -> np.ndarray:
    """[len(q), F] NaN-aware quantiles (numpy.nanquantile "linear" semantics) of x [N, F] through
    the kernelflow quantile op (exact selection on the data's device)."""
    return ops.column_quantiles(x, list(q), backend=backend).cpu().numpy()
