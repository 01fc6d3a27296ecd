"""The Preprocessor's one fit path: fit is the fit of one chunk, and partial_fit, Dask and
distributed fits merge the same statistics; its parameters come from the same maths as the
scikit-learn-compatible estimators; files saved by the first format load unchanged."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins

import kernelflow
from kernelflow import Preprocessor
from kernelflow.preprocessing import MaxAbsScaler, MinMaxScaler, OutlierClipper, RobustScaler, SimpleImputer, StandardScaler
from kernelflow.preprocessing.preprocessor import fit as fit_path
from kernelflow.preprocessing.preprocessor.stats import NotMergeable

DATA = os.path.join(os.path.dirname(__file__), "data")
ARRAYS = ("fill_", "clip_lo_", "clip_hi_", "shift_", "inv_scale_", "offset_", "lambdas_")


def hostile_table(n=1500, seed=0):
    """Mixed magnitudes, NaN, a constant column, huge and tiny values, a rare category, None."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.standard_normal(n) * 1e6, "b": rng.exponential(size=n) * 1e-6,
                       "c": np.full(n, 7.0), "d": rng.standard_normal(n) * 1e150})
    df.loc[rng.random(n) < 0.2, "a"] = np.nan
    df.loc[rng.random(n) < 0.05, "d"] = np.nan
    df["s"] = rng.choice(list("pqrst"), n, p=[0.6, 0.25, 0.1, 0.04, 0.01])
    df.loc[rng.random(n) < 0.1, "s"] = None
    return df


def _params(pre) -> dict:
    return {k: np.asarray(getattr(pre, k)) for k in ARRAYS}


MERGEABLE = [{}, {"impute": "constant", "fill_value": -3.0, "scale": "minmax", "add_indicator": True},
             {"impute": None, "scale": "maxabs", "min_frequency": 50, "handle_unknown": "infrequent_if_exist"},
             {"nonlinear": "log1p", "numeric": ["b", "c"], "impute": "mean"},
             {"impute": "median", "clip": "iqr", "scale": "robust", "max_categories": 3, "onehot_drop": "first"},
             {"clip": "zscore", "scale": None, "cat_impute": "constant"}]


@pytest.mark.parametrize("policy", MERGEABLE, ids=str)
def test_one_chunk_merged_state_equals_fit(policy):
    """Below the sketch's capacity (2048 values a column) the merged statistics of one chunk are
    exact, so partial_fit of the whole table equals fit: moments bit for bit up to the kernels'
    summation, quantiles exactly."""
    df = hostile_table()
    full = Preprocessor(**policy).fit(df)
    one = Preprocessor(**policy).partial_fit(df)
    for k, v in _params(full).items():
        np.testing.assert_allclose(getattr(one, k), v, rtol=1e-14, atol=0, err_msg=k)
    assert list(one.get_feature_names_out()) == list(full.get_feature_names_out())
    np.testing.assert_array_equal(one.transform(df), full.transform(df))


@pytest.mark.parametrize("policy", MERGEABLE[:4], ids=str)
def test_chunks_in_any_split_equal_fit(policy):
    """Moments merge by Chan's rule and category counts add: any split of the rows gives the fit."""
    df = hostile_table(2400, seed=3)
    full = Preprocessor(**policy).fit(df)
    for cuts in ([1200], [5, 9], [700, 1500, 2000]):
        part = Preprocessor(**policy)
        for lo, hi in zip([0] + cuts, cuts + [len(df)]):
            part.partial_fit(df.iloc[lo:hi])
        # a merged mean is exact to a few ulps of the column's magnitude, not of the mean itself
        # (column d: spread 1e150, mean ~1e147), so values in data units get an absolute
        # tolerance from the column's largest |x|
        mag = np.array([np.nanmax(np.abs(df[c].to_numpy(float))) for c in full.numeric_columns_])
        for k, v in _params(full).items():
            atol = 1e-300
            if k in ("fill_", "clip_lo_", "clip_hi_", "shift_") and v.shape == mag.shape:
                atol = np.where(np.isfinite(v), 1e-13 * mag, 0.0)
            got = np.asarray(getattr(part, k))
            assert got.shape == v.shape, k
            ok = np.isclose(got, v, rtol=1e-12, atol=atol, equal_nan=True)
            assert ok.all(), f"{k}: {got[~ok]} != {v[~ok]}"
        assert list(part.get_feature_names_out()) == list(full.get_feature_names_out())


def test_dask_uses_the_merged_state():
    dd = pytest.importorskip("dask.dataframe")
    df = hostile_table(900, seed=5)
    policy = {"impute": "median", "scale": "robust", "add_indicator": True}
    got = Preprocessor(**policy).fit_dask(dd.from_pandas(df, npartitions=4))
    ddf = dd.from_pandas(df, npartitions=4)
    states = [fit_path.chunk_state(got, ddf.get_partition(i).compute()) for i in range(ddf.npartitions)]
    ref = Preprocessor(**policy)
    fit_path.start(ref, df, True)
    fit_path.finish(ref, fit_path.merge_all(ref, states))
    for k, v in _params(ref).items():
        np.testing.assert_array_equal(getattr(got, k), v, err_msg=k)
    # below the sketch capacity the quantiles are exact: equal to the one-chunk fit too
    np.testing.assert_allclose(got.shift_, Preprocessor(**policy).fit(df).shift_, rtol=1e-15)


def test_parameters_use_the_estimators_maths():
    """Numeric-only tables: the Preprocessor's fill, bounds and scale are the estimators' own."""
    df = hostile_table()[["a", "b", "c", "d"]]
    X = df.to_numpy()
    obs = X[:, [1, 2]]  # no NaN: the scalers see the same data as the Preprocessor's scaler step
    sub = df[["b", "c"]]
    sc = StandardScaler().fit(obs)
    pre = Preprocessor(impute=None).fit(sub)
    # the same kernel on two layouts of the data (a C-ordered copy, the frame's columns): its
    # float64 block sums may round differently in the last place
    np.testing.assert_allclose(pre.shift_, sc.mean_, rtol=4e-15)
    np.testing.assert_allclose(pre.inv_scale_, 1.0 / sc.scale_, rtol=4e-15)
    mm = MinMaxScaler().fit(obs)
    pre = Preprocessor(impute=None, scale="minmax").fit(sub)
    np.testing.assert_array_equal(pre.shift_, mm.data_min_)
    np.testing.assert_array_equal(pre.inv_scale_, mm.scale_)
    ma = MaxAbsScaler().fit(obs)
    np.testing.assert_array_equal(Preprocessor(impute=None, scale="maxabs").fit(sub).inv_scale_, 1.0 / ma.scale_)
    rs = RobustScaler().fit(X)
    pre = Preprocessor(impute=None, scale="robust").fit(df)
    np.testing.assert_array_equal(pre.shift_, rs.center_)
    np.testing.assert_array_equal(pre.inv_scale_, 1.0 / rs.scale_)
    for method in ("zscore", "iqr"):
        oc = OutlierClipper(method=method, k=2.0).fit(X)
        pre = Preprocessor(impute=None, clip=method, clip_k=2.0, scale=None).fit(df)
        np.testing.assert_allclose(pre.clip_lo_, oc.lower_, rtol=1e-14)
        np.testing.assert_allclose(pre.clip_hi_, oc.upper_, rtol=1e-14)
    for strategy in ("mean", "median"):
        si = SimpleImputer(strategy=strategy).fit(X)
        # a mean is exact to a few ulps of the column's magnitude (1e6 spread, mean ~1e3), a median exactly
        atol = 1e-15 * np.nanmax(np.abs(X), axis=0) if strategy == "mean" else 0.0
        got = Preprocessor(impute=strategy, scale=None).fit(df).fill_
        assert np.all(np.abs(got - si.statistics_) <= atol + 4e-15 * np.abs(si.statistics_)), (strategy, got, si.statistics_)


def test_policies_that_do_not_merge_are_refused_before_any_state():
    df = hostile_table(200)
    for policy in ({"clip": "quantile"}, {"clip": "zscore", "scale": "maxabs"}, {"nonlinear": "box-cox"}):
        pre = Preprocessor(**policy)
        with pytest.raises(NotMergeable, match="partial_fit and distributed fits need"):
            pre.partial_fit(df)
        assert not hasattr(pre, "_stream_") and not hasattr(pre, "n_features_out_")
        Preprocessor(**{**policy, "numeric": ["b"]}).fit(df)  # one chunk: every policy fits
    with pytest.raises(ValueError, match="Box-Cox needs a column that is not constant; column 'c'"):
        Preprocessor(nonlinear="box-cox", numeric=["b", "c"]).fit(df)


def test_failed_chunk_keeps_the_merged_state():
    df = hostile_table(600)
    pre = Preprocessor().partial_fit(df.iloc[:300])
    before = _params(pre)
    bad = df.iloc[300:].copy()
    bad.iloc[0, 0] = np.inf
    with pytest.raises(ValueError, match="contain infinity"):
        pre.partial_fit(bad)
    after = Preprocessor().partial_fit(df.iloc[:300]).partial_fit(df.iloc[300:])
    pre.partial_fit(df.iloc[300:])  # the failed chunk left no trace
    for k, v in _params(after).items():
        np.testing.assert_array_equal(getattr(pre, k), v, err_msg=k)
    for k, v in before.items():
        assert v.shape == getattr(pre, k).shape


def test_chunks_with_categories_of_their_own():
    """A category only a later chunk sees, a chunk where a column is all missing, and values
    that cannot be sorted together (a clear error naming the column)."""
    df = pd.DataFrame({"x": np.arange(8.0), "s": ["a", "b", None, None, "c", "a", "z", None]})
    part = Preprocessor()
    for chunk in (df.iloc[:2], df.iloc[2:4], df.iloc[4:]):
        part.partial_fit(chunk)
    full = Preprocessor().fit(df)
    assert list(part.get_feature_names_out()) == list(full.get_feature_names_out())
    np.testing.assert_array_equal(part.transform(df), full.transform(df))
    mixed = Preprocessor(categorical=["s"]).partial_fit(pd.DataFrame({"x": [1.0], "s": ["a"]}))
    with pytest.raises(TypeError, match="categorical column 's' mixes value types"):
        mixed.partial_fit(pd.DataFrame({"x": [2.0], "s": [3]}))


@pytest.mark.parametrize("name", ["preprocessor_format1_penguins", "preprocessor_format1_ordinal"])
def test_files_of_the_first_format_load_and_match_a_fresh_fit(name):
    """Written by the version before the Preprocessor became a package; the same policy fitted
    now gives the same parameters and output."""
    old = kernelflow.load(os.path.join(DATA, f"{name}.safetensors"))
    df = load_penguins()
    new = Preprocessor(**old.get_params()).fit(df)
    for k, v in _params(new).items():
        np.testing.assert_allclose(getattr(old, k), v, rtol=1e-14, atol=0, err_msg=k)
    assert list(old.get_feature_names_out()) == list(new.get_feature_names_out())
    np.testing.assert_array_equal(old.transform(df), new.transform(df))
    m = old.to_module()
    np.testing.assert_allclose(m(*old.inputs(df)).numpy(), new.transform(df), rtol=1e-6, atol=1e-6)
