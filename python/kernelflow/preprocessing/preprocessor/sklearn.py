"""The scikit-learn ColumnTransformer that computes what a fitted Preprocessor computes."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


def to_sklearn(pre):
    """The equivalent ColumnTransformer (unfitted); clipping is kernelflow's ``OutlierClipper``
    (scikit-learn has none), so that pipeline holds one kernelflow step."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import (FunctionTransformer, MaxAbsScaler, MinMaxScaler, OneHotEncoder,
                                       OrdinalEncoder, PowerTransformer, RobustScaler, StandardScaler)

    steps = []
    if pre.impute is not None:
        steps.append(SimpleImputer(strategy=pre.impute, fill_value=pre.fill_value))
    if pre.clip is not None:  # scikit-learn has no clipping step: kernelflow's OutlierClipper
        from kernelflow.preprocessing.robust import OutlierClipper

        q = pre.clip_quantiles
        steps.append(OutlierClipper(method=pre.clip, k=pre.clip_k, quantile_range=(100.0 * q[0], 100.0 * q[1])))
    if pre.nonlinear in ("log1p", "sqrt"):
        steps.append(FunctionTransformer(np.log1p if pre.nonlinear == "log1p" else np.sqrt,
                                         feature_names_out="one-to-one"))
    elif pre.nonlinear is not None:
        steps.append(PowerTransformer(method=pre.nonlinear, standardize=False))
    scaler = {"standard": StandardScaler, "minmax": MinMaxScaler, "maxabs": MaxAbsScaler, "robust": RobustScaler}
    if pre.scale is not None:
        steps.append(scaler[pre.scale]())
    transformers = []
    if pre.numeric_columns_:
        transformers.append(("num", make_pipeline(*steps) if steps else "passthrough", pre.numeric_columns_))
    if pre.indicator_columns_:
        transformers.append(("ind", MissingIndicator(features="all"), pre.indicator_columns_))
    if pre._cat_plans:
        cat_steps = [CatImputer(pre.cat_impute, pre.cat_fill_value)]
        if pre.encode == "onehot":
            cat_steps.append(OneHotEncoder(handle_unknown=pre.handle_unknown, min_frequency=pre.min_frequency,
                                           max_categories=pre.max_categories, drop=pre.onehot_drop, sparse_output=False))
        else:
            cat_steps.append(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=pre.unknown_value))
        transformers.append(("cat", make_pipeline(*cat_steps), pre.categorical_columns_))
    if pre.passthrough_columns_:
        transformers.append(("remainder", "passthrough", pre.passthrough_columns_))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)


class CatImputer(TransformerMixin, BaseEstimator):
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
