"""What a practitioner would run instead, on the same split: a scikit-learn ColumnTransformer in
front of HistGradientBoosting (categories ordinal-encoded and declared categorical; NaN handled
natively) and of a linear model (median imputation, scaling, one-hot) with wall times."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from kernelflow.workflow.evaluate import scores


def _columns(X) -> tuple[list, list]:
    import pandas as pd

    num = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    cat = [c for c in X.columns if c not in set(num)]
    return num, cat


def _as_str(X):
    """Categorical columns as strings (object) with NaN kept: the encoders need one type per column."""
    return X.apply(lambda s: s.astype(str).where(s.notna(), np.nan).astype(object))


def make(name: str, task: str, X, seed: int, max_iter: int, min_frequency: Any = None, max_categories: Any = None):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

    num, cat = _columns(X)
    to_str = FunctionTransformer(_as_str, feature_names_out="one-to-one")
    if name == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        ct = ColumnTransformer([("num", "passthrough", num),
                                ("cat", make_pipeline(to_str, OrdinalEncoder(
                                    handle_unknown="use_encoded_value", unknown_value=np.nan,
                                    encoded_missing_value=np.nan, min_frequency=min_frequency,
                                    max_categories=max_categories)), cat)])
        mask = [False] * len(num) + [True] * len(cat)
        cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
        # categorical_features by mask (max_categories keeps them under HGB's 255); early stopping
        # as scikit-learn does by default (on above 10,000 rows, 10% of the training rows held out)
        model = cls(max_iter=max_iter, categorical_features=mask if cat else None, random_state=seed)
        return make_pipeline(ct, model)
    if name == "linear":
        from sklearn.linear_model import LogisticRegression, Ridge

        ct = ColumnTransformer([("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                                      StandardScaler()), num),
                                ("cat", make_pipeline(to_str, SimpleImputer(strategy="most_frequent"),
                                                      OneHotEncoder(handle_unknown="infrequent_if_exist",
                                                                    min_frequency=min_frequency,
                                                                    max_categories=max_categories)), cat)])
        model = LogisticRegression(max_iter=max_iter) if task == "classification" else Ridge()
        return make_pipeline(ct, model)
    raise ValueError(f"unknown baseline {name!r}")


def run_baseline(name: str, task: str, X_train, y_train, X_test, y_test, n_classes: int, seed: int, max_iter: int,
                 pre_opts: dict, repeats: int) -> dict:
    """Fit on the training rows, score on the test rows; wall times of fit, predict and one row."""
    from kernelflow.workflow.evaluate import time_call
    import torch

    est = make(name, task, X_train, seed, max_iter, pre_opts.get("min_frequency"), pre_opts.get("max_categories"))
    t0 = time.perf_counter()
    est.fit(X_train, y_train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if task == "classification":
        pred = est.predict_proba(X_test)
        full = np.zeros((len(X_test), n_classes))
        full[:, est.classes_.astype(np.int64)] = pred  # classes absent from the training rows get 0
        pred = full
    else:
        pred = est.predict(X_test)
    predict_s = time.perf_counter() - t0
    one = X_test.iloc[:1]
    fn = (lambda: est.predict_proba(one)) if task == "classification" else (lambda: est.predict(one))
    lat = time_call(fn, max(5, repeats // 3), torch.device("cpu"), warmup=1)
    return {"model": name, "metrics": scores(task, y_test, pred), "fit_s": fit_s, "predict_s": predict_s,
            "latency_ms": lat * 1e3, "throughput_rows_s": len(X_test) / predict_s if predict_s > 0 else float("nan"),
            "device": "cpu", "estimator": repr(est.steps[-1][1])}
