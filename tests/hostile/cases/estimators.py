"""scikit-learn-compatible estimators: hostile values against scikit-learn on every backend,
inputs that require grad, float32 extremes."""

from __future__ import annotations

import numpy as np
import torch

from _case import case, close, raises

BACKENDS = ("cpu", "triton", "torch")


def _pairs():
    import sklearn.impute as ski
    import sklearn.preprocessing as skp

    from kernelflow import preprocessing as P

    return {
        "StandardScaler": (P.StandardScaler, skp.StandardScaler, {}),
        "MinMaxScaler": (P.MinMaxScaler, skp.MinMaxScaler, {"feature_range": (-3, 2)}),
        "MaxAbsScaler": (P.MaxAbsScaler, skp.MaxAbsScaler, {}),
        "RobustScaler": (P.RobustScaler, skp.RobustScaler, {"quantile_range": (10.0, 80.0)}),
        "SimpleImputer_mean": (P.SimpleImputer, ski.SimpleImputer, {"strategy": "mean"}),
        "SimpleImputer_median": (P.SimpleImputer, ski.SimpleImputer, {"strategy": "median"}),
        "PowerTransformer": (P.PowerTransformer, skp.PowerTransformer, {}),
    }


NAMES = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "SimpleImputer_mean", "SimpleImputer_median",
         "PowerTransformer")


def _hostile_matrix():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)) * [1.0, 1e6, 1e-6, 1e120, 1.0]
    x[::7, 0] = np.nan
    x[3, 1] = 5e-324  # a denormal
    x[:, 4] = 2.5  # constant column
    x[5:, 2] = np.nan
    return x


for be in BACKENDS:
    for name in NAMES:
        @case(f"estimators/{name}_hostile_values_vs_sklearn[{be}]")
        def _(be=be, name=name):
            ours, theirs, kw = _pairs()[name]
            x = _hostile_matrix()
            if name == "PowerTransformer":
                x = x[:, [0, 2, 4]] * [1.0, 1e6, 1.0]  # scipy's MLE itself overflows on 1e120
            got = ours(backend=be, **kw).fit(x).transform(x)
            ref = theirs(**kw).fit(x).transform(x)
            close(got, ref, rtol=1e-6, atol=1e-9)

        @case(f"estimators/{name}_input_requires_grad[{be}]")
        def _(be=be, name=name):
            ours, theirs, kw = _pairs()[name]
            x = torch.tensor(np.abs(_hostile_matrix()[:, [0, 2, 4]]) + 0.5, requires_grad=True)
            got = ours(backend=be, **kw).fit_transform(x)
            close(got, theirs(**kw).fit_transform(x.detach().numpy()), rtol=1e-6, atol=1e-9)

    @case(f"estimators/StandardScaler_float32_pm1e20[{be}]")
    def _(be=be):
        from sklearn.preprocessing import StandardScaler as Sk

        from kernelflow.preprocessing import StandardScaler

        x = np.array([[1e20], [-1e20], [0.0]], np.float32)
        close(StandardScaler(backend=be).fit(x).scale_, Sk().fit(x).scale_, rtol=1e-6)

    @case(f"estimators/encoders_vs_sklearn_nan_none_unknown[{be}]")
    def _(be=be):
        import pandas as pd
        import sklearn.preprocessing as skp

        from kernelflow.preprocessing import OneHotEncoder, OrdinalEncoder

        X = pd.DataFrame({"s": ["b", None, "a", "b", "😀"], "n": [1.0, np.nan, 2.0, 1.0, 3.0]})
        Z = pd.DataFrame({"s": ["zz", "a", None, "b", "a"], "n": [9.0, 1.0, np.nan, 3.0, 2.0]})
        a = OneHotEncoder(handle_unknown="ignore", sparse_output=False, backend=be).fit(X).transform(Z)
        b = skp.OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(X).transform(Z)
        close(a, b, what="one-hot")
        a = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-7, backend=be).fit(X).transform(Z)
        b = skp.OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-7).fit(X).transform(Z)
        close(a, b, what="ordinal")


@case("estimators/bad_inputs_are_clean_errors")
def _():
    from kernelflow.preprocessing import MinMaxScaler, StandardScaler

    raises(ValueError, "infinity", StandardScaler().fit, np.array([[1.0], [np.inf]]))
    raises(ValueError, "0 sample", StandardScaler().fit, torch.zeros(0, 3))
    raises(ValueError, "2D", StandardScaler().fit, torch.zeros(4))
    raises(TypeError, "real numbers", StandardScaler().fit, torch.ones(3, 2, dtype=torch.bool))
    raises(TypeError, "real numbers", StandardScaler().fit, torch.ones(3, 2, dtype=torch.complex64))
    raises(ValueError, "features", StandardScaler().fit(np.ones((3, 2))).transform, np.ones((3, 3)))
    raises(ValueError, "desired feature range", MinMaxScaler(feature_range=(2, 1)).fit, np.ones((3, 2)))


@case("estimators/torch_input_stays_torch_same_values")
def _():
    from kernelflow.preprocessing import StandardScaler

    x = torch.tensor(_hostile_matrix()[:, :3])
    a = StandardScaler().fit_transform(x)
    b = StandardScaler().fit_transform(x.numpy())
    assert isinstance(a, torch.Tensor) and isinstance(b, np.ndarray)
    close(a, b, rtol=1e-12)
