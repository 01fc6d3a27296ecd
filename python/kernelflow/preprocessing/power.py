"""PowerTransformer: scikit-learn's API and results; ``transform`` is one fused kernel pass
(power transform and standardization folded into one set of per-column parameters).

Fit follows scikit-learn 1.9.1 step by step on the host: lambdas by maximum likelihood with
scipy's Brent optimizer (``scipy.stats.yeojohnson`` / ``scipy.stats.boxcox`` on the non-NaN
values of each column), Yeo-Johnson lambda 1 for constant columns, then a scikit-learn
StandardScaler fitted on the transformed data. Box-Cox of a non-positive value is rejected with
scikit-learn's message.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import stats
from scipy.special import boxcox
from sklearn.base import OneToOneFeatureMixin
from sklearn.preprocessing import StandardScaler as _SkStandardScaler
from sklearn.utils.validation import check_array, check_is_fitted

from kernelflow import ops
from kernelflow._array import kind_of, numpy_to_tensor, pyarrow_to_pandas
from kernelflow.io import persistable
from kernelflow.preprocessing._base import KernelTransformer, is_constant_feature, set_init_params

_BOX_COX_MSG = "The Box-Cox transformation can only be applied to strictly positive data"


@persistable
class PowerTransformer(OneToOneFeatureMixin, KernelTransformer):
    """Apply a power transform featurewise to make data more Gaussian-like.

    Same parameters, attributes and results as ``sklearn.preprocessing.PowerTransformer``, plus
    ``backend`` (auto, cpu, cuda, triton, torch) and ``dtype`` (output dtype; None keeps the
    input's float dtype). ``inverse_transform`` runs as float64 torch ops on the data's device.
    """

    def __init__(self, method="yeo-johnson", *, standardize=True, copy=True, backend="auto", dtype=None):
        set_init_params(self, locals())

    def _check_method(self):
        if self.method not in ("yeo-johnson", "box-cox"):
            raise ValueError(f"The 'method' parameter of PowerTransformer must be a str among "
                             f"{{'yeo-johnson', 'box-cox'}}. Got {self.method!r} instead.")

    def _check_positive(self, t: torch.Tensor) -> None:
        if self.method == "box-cox" and t.numel():
            finite_min = torch.where(torch.isnan(t), torch.full((), float("inf"), dtype=t.dtype, device=t.device), t)
            if bool(finite_min.min() <= 0):
                raise ValueError(_BOX_COX_MSG)

    def fit(self, X, y=None):
        self._fit(X)
        return self

    def fit_transform(self, X, y=None):
        t, kind = self._fit(X)
        return self._in_place(X, self._output(self._forward(t), kind))

    def _in_place(self, X, out):
        """copy=False: scikit-learn writes the result over X (a float numpy array) and returns X."""
        if (not self.copy and isinstance(X, np.ndarray) and isinstance(out, np.ndarray) and X.dtype == out.dtype
                and X.shape == out.shape and X.flags.writeable):
            X[...] = out
            return X
        return out

    def _fit(self, X):
        self._check_method()
        t, kind = self._validate(X, reset=True)
        self._check_positive(t)
        Xh = t.detach().cpu().numpy().copy()  # scipy's optimizer runs on the host
        n = Xh.shape[0]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"(Mean of empty slice|Degrees of freedom)")
            mean = np.mean(Xh, axis=0, dtype=np.float64)
            var = np.var(Xh, axis=0, dtype=np.float64)
        fn = boxcox if self.method == "box-cox" else stats.yeojohnson
        with np.errstate(invalid="ignore"):
            self.lambdas_ = np.empty(Xh.shape[1], dtype=Xh.dtype)
            for i in range(Xh.shape[1]):
                col = Xh[:, i]
                if self.method == "yeo-johnson" and is_constant_feature(var[i], mean[i], n):
                    self.lambdas_[i] = 1.0
                    continue
                live = col[~np.isnan(col)]
                if self.method == "box-cox":
                    if live.size == 0:
                        raise ValueError("Column must not be all nan.")
                    _, lam = stats.boxcox(live, lmbda=None)
                else:
                    _, lam = stats.yeojohnson(live, lmbda=None)
                self.lambdas_[i] = lam
                if self.standardize:
                    Xh[:, i] = fn(Xh[:, i], self.lambdas_[i])
        if self.standardize:  # scikit-learn's own StandardScaler on the transformed data, as it does
            sc = _SkStandardScaler(copy=False).set_output(transform="default").fit(Xh)
            self.mean_, self.scale_ = sc.mean_, sc.scale_
        return t, kind

    def _forward(self, t: torch.Tensor) -> torch.Tensor:
        """One pass of the table kernel: power transform, then standardization."""
        F = t.shape[1]
        shift, inv = (self.mean_, 1.0 / self.scale_) if self.standardize else (0.0, 1.0)
        params = np.vstack([ops.transform_params(F, shift=shift, inv_scale=inv),
                            np.full((1, F), float(ops.FN_CODES[self.method])),
                            np.asarray(self.lambdas_, dtype=np.float64).reshape(1, F)])
        spec = ops.TableSpec.build(F, params, list(range(F))).to(t.device)
        codes = torch.empty((t.shape[0], 0), dtype=torch.int32, device=t.device)
        return ops.table_transform(t, codes, spec, out_dtype=self._out_dtype(t), backend=self.backend)

    def transform(self, X):
        check_is_fitted(self, "lambdas_")
        t, kind = self._validate(X, reset=False)
        self._check_positive(t)
        return self._in_place(X, self._output(self._forward(t), kind))

    def inverse_transform(self, X):
        check_is_fitted(self, "lambdas_")
        if kind_of(X) == "numpy" and hasattr(X, "columns"):
            X = X.to_numpy()  # as scikit-learn: inverse_transform does not check feature names
        elif kind_of(X) == "numpy":
            X = pyarrow_to_pandas(X)
            X = X.to_numpy() if hasattr(X, "columns") else X
        if kind_of(X) == "numpy":
            Xc = check_array(X, dtype=[np.float64, np.float32, np.float16], ensure_all_finite="allow-nan")
            if Xc.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {Xc.shape[1]} features, but PowerTransformer is expecting "
                                 f"{self.n_features_in_} features as input.")
            t = numpy_to_tensor(Xc.astype(np.float32) if Xc.dtype == np.float16 else Xc)
            kind = "numpy16" if Xc.dtype == np.float16 else "numpy"
        else:
            t, kind = self._validate(X, reset=False)
        x = t.detach().to(torch.float64)
        if self.standardize:
            x = x * torch.as_tensor(self.scale_, device=x.device) + torch.as_tensor(self.mean_, device=x.device)
        lam = torch.as_tensor(np.asarray(self.lambdas_, dtype=np.float64), device=x.device)
        eps = float(np.spacing(1.0))
        if self.method == "box-cox":
            # scipy.special.inv_boxcox
            safe = torch.where(lam == 0, torch.ones_like(lam), lam)
            res = torch.where(lam == 0, torch.exp(x), torch.exp(torch.log1p(x * lam) / safe))
        else:
            pos = x >= 0
            l_nz = lam.abs() >= eps
            lp = torch.where(l_nz, torch.pow(x * lam + 1, 1 / torch.where(l_nz, lam, torch.ones_like(lam))) - 1,
                             torch.exp(x) - 1)
            l2 = 2 - lam
            l2_nz = l2.abs() > eps
            ln = torch.where(l2_nz, 1 - torch.pow(-l2 * x + 1, 1 / torch.where(l2_nz, l2, torch.ones_like(l2))),
                             1 - torch.exp(-x))
            res = torch.where(pos, lp, ln)
            # the power of a negative base: outside the inverse's support (scikit-learn warns)
            bad = torch.isnan(res) & ~torch.isnan(x)
            for i in torch.nonzero(bad.any(0)).flatten().tolist():
                warnings.warn(f"Some values in column {i} of the inverse-transformed data are NaN. This may be caused "
                              "by numerical issues in the transformation process, e.g. extremely skewed data. Consider "
                              "inspecting the input data or preprocessing it before applying the transformation.",
                              UserWarning)
        return self._in_place(X, self._output(res.to(self._out_dtype(t)), kind))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
