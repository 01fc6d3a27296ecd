"""one_hot / ordinal_encode on every backend against the torch reference and scikit-learn's
OneHotEncoder / OrdinalEncoder. Outputs are 0/1 or small integers: every comparison is exact."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from _helpers import opcheck_backends, strided
from kernelflow.ops.categories import encode_strings, integer_categories, map_codes
from kernelflow.ops.layouts import OneHotLayout, OrdinalLayout
from kernelflow.ops.onehot import one_hot, one_hot_reference, ordinal_encode, ordinal_encode_reference

WORDS = np.array(["red", "green", "blue", "cyan", "teal", "plum", "gold"], dtype=object)
P = [0.35, 0.2, 0.15, 0.1, 0.1, 0.06, 0.04]  # skewed, so min_frequency / max_categories bite


def string_table(n, seed, unknown=True, missing=0.08):
    g = np.random.default_rng(seed)
    X = g.choice(WORDS, size=(n, 3), p=P)
    X[:, 2] = g.choice(WORDS[:2], size=n)  # a binary column, for drop="if_binary"
    if unknown:
        X[g.random((n, 3)) < 0.05] = "never-seen"
    X[g.random((n, 3)) < missing] = np.nan
    return X


def fit_columns(X):
    fits = [encode_strings(X[:, j]) for j in range(X.shape[1])]
    return [f.categories for f in fits], [f.counts for f in fits], [f.n_missing for f in fits]


def codes_of(X, cats):
    return torch.from_numpy(np.stack([encode_strings(X[:, j], cats[j]).codes for j in range(X.shape[1])], 1))


def sk(fn, *a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown categories with drop warn in scikit-learn
        return fn(*a)


ONEHOT_CONFIGS = [
    dict(handle_unknown="ignore"),
    dict(handle_unknown="error"),
    dict(handle_unknown="infrequent_if_exist", min_frequency=8),
    dict(handle_unknown="infrequent_if_exist", min_frequency=0.1, drop="first"),
    dict(handle_unknown="ignore", max_categories=3, drop="if_binary"),
    dict(handle_unknown="infrequent_if_exist", max_categories=2, drop="if_binary"),
    dict(handle_unknown="ignore", min_frequency=5, max_categories=4, drop=["blue", "red", "green"]),
    dict(handle_unknown="ignore", drop=[np.nan, "red", "green"]),
]


@pytest.mark.parametrize("cfg", ONEHOT_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_string_columns_match_sklearn(device_backend, cfg):
    device, backend = device_backend
    X = string_table(150, 0, unknown=False)
    Xt = string_table(40, 1, unknown=cfg["handle_unknown"] != "error")
    enc = OneHotEncoder(sparse_output=False, **cfg).fit(X)
    cats, counts, n_missing = fit_columns(X)
    lay = OneHotLayout.from_categories(cats, counts, n_missing, **cfg)
    assert list(lay.feature_names) == list(enc.get_feature_names_out())
    codes = codes_of(Xt, cats).to(device)
    got = one_hot(codes, lay, backend=backend)
    ref = sk(enc.transform, Xt)
    assert got.dtype == torch.float32 and got.device.type == device
    np.testing.assert_array_equal(got.cpu().numpy(), ref)
    feat, table, _ = lay.tensors(device)
    np.testing.assert_array_equal(one_hot_reference(codes, feat, table, torch.float32, lay.width)[0].cpu().numpy(), ref)


@pytest.mark.parametrize("cfg", [dict(handle_unknown="ignore"), dict(handle_unknown="infrequent_if_exist", min_frequency=30),
                                 dict(handle_unknown="ignore", max_categories=4, drop="first")], ids=str)
def test_integer_columns_on_device_match_sklearn(device_backend, cfg):
    device, backend = device_backend
    g = np.random.default_rng(5)
    X = (g.zipf(1.6, size=(200, 2)) % 9 - 3).astype(np.int64)  # skewed, negative values too
    Xt = (g.zipf(1.6, size=(30, 2)) % 12 - 3).astype(np.int64)  # includes unseen values
    enc = OneHotEncoder(sparse_output=False, **cfg).fit(X)
    xd = torch.from_numpy(X).to(device)
    cats = integer_categories(xd)
    lay = OneHotLayout.from_categories([v for v, _ in cats], [c for _, c in cats], **cfg)
    codes = map_codes(torch.from_numpy(Xt).to(device), [v for v, _ in cats])
    got = one_hot(codes, lay, backend=backend)
    np.testing.assert_array_equal(got.cpu().numpy(), sk(enc.transform, Xt))
    assert list(lay.feature_names) == list(enc.get_feature_names_out())


def test_unknown_raises_naming_the_column(device_backend):
    device, backend = device_backend
    X = string_table(60, 2, unknown=False, missing=0.0)
    cats, counts, nm = fit_columns(X)
    lay = OneHotLayout.from_categories(cats, counts, nm, handle_unknown="error")
    Xt = X[:5].copy()
    Xt[3, 1] = "never-seen"
    with pytest.raises(ValueError, match="unknown categor.*column 1"):
        sk(OneHotEncoder(sparse_output=False).fit(X).transform, Xt)
    with pytest.raises(ValueError, match=r"Found 1 unknown categories in column 1 \('b'\)"):
        one_hot(codes_of(Xt, cats).to(device), lay, backend=backend, feature_names_in=["a", "b", "c"])
    # a missing value in a column without missing values in fit is unknown as well
    Xt[3, 1] = X[3, 1]
    Xt[0, 2] = None
    with pytest.raises(ValueError, match="column 2"):
        one_hot(codes_of(Xt, cats).to(device), lay, backend=backend)
    # a one-category column with drop="first" has no output but still raises
    lay = OneHotLayout.from_categories([np.array(["a"]), np.array(["x", "y"])], drop="first")
    assert lay.widths == (0, 1)
    # 4 rows x 1 output: the CUDA vector-store path plus its check-only pass
    codes = torch.tensor([[0, 1], [0, 0], [5, 0], [0, 1]], dtype=torch.int32, device=device)
    with pytest.raises(ValueError, match="Found 1 unknown categories in column 0"):
        one_hot(codes, lay, backend=backend)
    assert one_hot(codes[:2], lay, backend=backend).cpu().tolist() == [[1.0], [0.0]]


@pytest.mark.parametrize("out_dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_output_dtypes_and_slice_of_wider_matrix(device_backend, out_dtype):
    device, backend = device_backend
    X = string_table(37, 3)
    cats, counts, nm = fit_columns(X)
    lay = OneHotLayout.from_categories(cats, counts, nm, handle_unknown="ignore", min_frequency=4)
    codes = codes_of(X, cats).to(device)
    feat, table, _ = lay.tensors(device)
    ref = one_hot_reference(codes, feat, table, out_dtype, lay.width)[0]
    got = one_hot(codes, lay, out_dtype=out_dtype, backend=backend)
    assert got.dtype == out_dtype and torch.equal(got, ref)
    wide = torch.full((37, lay.width + 7), 5.0, dtype=out_dtype, device=device)
    res = one_hot(codes, lay, out=wide[:, 3:3 + lay.width], backend=backend)
    assert res.data_ptr() == wide[:, 3:].data_ptr()
    assert torch.equal(wide[:, 3:3 + lay.width], ref)
    assert (wide[:, :3] == 5).all() and (wide[:, 3 + lay.width:] == 5).all()


@pytest.mark.parametrize("layout", ["fortran", "strided_rows", "int64"])
def test_non_contiguous_codes(device_backend, layout):
    device, backend = device_backend
    X = string_table(50, 4)
    cats, counts, nm = fit_columns(X)
    lay = OneHotLayout.from_categories(cats, counts, nm, handle_unknown="infrequent_if_exist", max_categories=4)
    base = codes_of(X, cats).to(device)
    codes = base.long() if layout == "int64" else strided(base, layout)
    feat, table, _ = lay.tensors(device)
    ref = one_hot_reference(codes.int(), feat, table, torch.float32, lay.width)[0]
    assert torch.equal(one_hot(codes, lay, backend=backend), ref)


def test_empty_one_row_and_no_columns(device_backend):
    device, backend = device_backend
    lay = OneHotLayout.from_categories([np.array(["a", "b"]), np.array([1, 2, 3])], handle_unknown="ignore")
    e = one_hot(torch.zeros((0, 2), dtype=torch.int32, device=device), lay, backend=backend)
    assert e.shape == (0, 5)
    one = one_hot(torch.tensor([[1, -1]], dtype=torch.int32, device=device), lay, backend=backend)
    assert one.cpu().tolist() == [[0.0, 1.0, 0.0, 0.0, 0.0]]
    none = OneHotLayout.from_categories([])
    assert one_hot(torch.zeros((4, 0), dtype=torch.int32, device=device), none, backend=backend).shape == (4, 0)
    # a column with no categories at all: every value is unknown, ignored -> width 0
    empty_col = OneHotLayout.from_categories([np.array([], dtype=object)], handle_unknown="ignore")
    assert one_hot(torch.tensor([[0], [-1]], dtype=torch.int32, device=device), empty_col, backend=backend).shape == (2, 0)


def test_many_categories(device_backend):
    device, backend = device_backend
    n = 6 if backend == "triton" and device == "cpu" else 300  # the Triton interpreter: a small grid
    g = np.random.default_rng(7)
    X = g.integers(0, 1000, size=(2000, 1))
    X[:1000, 0] = np.arange(1000)  # every one of the 1000 categories is seen
    Xt = g.integers(-5, 1005, size=(n, 1))
    cfg = dict(handle_unknown="infrequent_if_exist", min_frequency=2)
    enc = OneHotEncoder(sparse_output=False, **cfg).fit(X)
    cats = integer_categories(torch.from_numpy(X).to(device))
    lay = OneHotLayout.from_categories([v for v, _ in cats], [c for _, c in cats], **cfg)
    codes = map_codes(torch.from_numpy(Xt).to(device), [v for v, _ in cats])
    got = one_hot(codes, lay, backend=backend)
    assert got.shape[1] == enc.transform(Xt).shape[1] > 500
    np.testing.assert_array_equal(got.cpu().numpy(), enc.transform(Xt))


ORDINAL_CONFIGS = [
    dict(),
    dict(handle_unknown="use_encoded_value", unknown_value=-1),
    dict(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=-2, min_frequency=8),
    dict(handle_unknown="use_encoded_value", unknown_value=99, max_categories=3),
    dict(handle_unknown="use_encoded_value", unknown_value=-1, min_frequency=0.2, max_categories=2),
]


@pytest.mark.parametrize("cfg", ORDINAL_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_ordinal_matches_sklearn(device_backend, cfg):
    device, backend = device_backend
    X = string_table(150, 0, unknown=False)
    Xt = string_table(40, 1, unknown="unknown_value" in cfg)
    enc = OrdinalEncoder(**cfg).fit(X)
    cats, counts, nm = fit_columns(X)
    lay = OrdinalLayout.from_categories(cats, counts, nm, **cfg)
    codes = codes_of(Xt, cats).to(device)
    ref = enc.transform(Xt)
    got = ordinal_encode(codes, lay, backend=backend)
    assert got.dtype == torch.float64
    np.testing.assert_array_equal(got.cpu().numpy(), ref)
    feat, table = lay.tensors(device)
    np.testing.assert_array_equal(ordinal_encode_reference(codes, feat, table, torch.float64)[0].cpu().numpy(), ref)
    got32 = ordinal_encode(codes, lay, out_dtype="float32", backend=backend)
    np.testing.assert_array_equal(got32.cpu().numpy(), ref.astype(np.float32))


def test_ordinal_int64_embedding_indices_and_errors(device_backend):
    device, backend = device_backend
    X = string_table(80, 8, unknown=False, missing=0.0)
    cats, counts, nm = fit_columns(X)
    lay = OrdinalLayout.from_categories(cats, counts, nm, handle_unknown="use_encoded_value", unknown_value=7)
    Xt = string_table(20, 9)
    Xt[Xt != Xt] = "x"  # no missing values: they would be unknown
    got = ordinal_encode(codes_of(Xt, cats).to(device), lay, out_dtype="int64", backend=backend)
    ref = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=7).fit(X).transform(Xt)
    assert got.dtype == torch.int64 and np.array_equal(got.cpu().numpy(), ref.astype(np.int64))
    strict = OrdinalLayout.from_categories(cats, counts, nm)
    codes = codes_of(X[:4], cats).to(device)
    codes[2, 2] = -1  # missing, never seen in fit
    with pytest.raises(ValueError, match="column 2"):
        ordinal_encode(codes, strict, backend=backend)
    nan_missing = OrdinalLayout.from_categories(cats, counts, [1, 0, 0])
    with pytest.raises(ValueError, match="int64 output needs finite"):
        ordinal_encode(codes, nan_missing, out_dtype="int64", backend=backend)
    wide = torch.zeros((4, 5), dtype=torch.float16, device=device)
    ordinal_encode(codes[:, :2], OrdinalLayout.from_categories(cats[:2]), out=wide[:, 1:3], backend=backend)
    assert (wide[:, 0] == 0).all() and (wide[:, 3:] == 0).all()
    assert torch.equal(wide[:, 1:3].float(), codes[:, :2].float())
    assert ordinal_encode(codes[:0], strict, backend=backend).shape == (0, 3)


def test_layout_validation():
    cats = [np.array(["a", "b"])]
    with pytest.raises(ValueError, match="handle_unknown"):
        OneHotLayout.from_categories(cats, handle_unknown="nope")
    with pytest.raises(ValueError, match="counts are needed"):
        OneHotLayout.from_categories(cats, min_frequency=2)
    with pytest.raises(ValueError, match="counts\\[0\\] must have 2 entries"):
        OneHotLayout.from_categories(cats, [np.array([1])], min_frequency=2)
    with pytest.raises(ValueError, match="not found"):
        OneHotLayout.from_categories(cats, drop=["z"])
    with pytest.raises(ValueError, match="because it is infrequent"):
        OneHotLayout.from_categories([np.array(["a", "b", "c"])], [np.array([9, 1, 9])], min_frequency=2, drop=["b"])
    with pytest.raises(ValueError, match="drop must"):
        OneHotLayout.from_categories(cats, drop="last")
    lay = OneHotLayout.from_categories(cats)
    with pytest.raises(ValueError, match="table entries"):
        OneHotLayout(lay.n_categories, lay.widths, lay.offsets, np.array([0, 5, -2, -2], dtype=np.int32),
                     lay.table_offsets, lay.feature_names, lay.infrequent, lay.drop_idx)
    with pytest.raises(ValueError, match="unknown_value must be set"):
        OrdinalLayout.from_categories(cats, handle_unknown="use_encoded_value")
    with pytest.raises(TypeError, match="codes must have a signed integer dtype"):
        one_hot(torch.zeros(3, 1), lay)
    with pytest.raises(ValueError, match="codes has 2 columns"):
        one_hot(torch.zeros(3, 2, dtype=torch.int32), lay)
    with pytest.raises(ValueError, match=r"out must have shape \(3, 2\)"):
        one_hot(torch.zeros(3, 1, dtype=torch.int32), lay, out=torch.empty(3, 3))
    with pytest.raises(ValueError, match="out_dtype"):
        one_hot(torch.zeros(3, 1, dtype=torch.int32), lay, out_dtype="int8")
    with pytest.raises(TypeError, match="layout must be"):
        one_hot(torch.zeros(3, 1, dtype=torch.int32), "layout")


def test_cpu_kernel_rejects_bad_layout():
    """Called directly (skipping OneHotLayout), the C++ kernel validates and never writes out of bounds."""
    lay = OneHotLayout.from_categories([np.array(["a", "b"])])
    feat, table, slots = lay.tensors()
    codes = torch.zeros((2, 1), dtype=torch.int32)
    out = torch.empty((2, 2))
    bad = table.clone()
    bad[0] = 2
    with pytest.raises(ValueError, match="entries must be in"):
        torch.ops.kernelflow.one_hot(codes, feat, bad, slots, out, "cpu")
    with pytest.raises(ValueError, match="as many columns"):
        torch.ops.kernelflow.one_hot(codes, feat, table, slots, torch.empty((2, 3)), "cpu")
    bad_feat = feat.clone()
    bad_feat[2, 0] = 10
    with pytest.raises(ValueError, match="past the end"):
        torch.ops.kernelflow.one_hot(codes, bad_feat, table, slots, out, "cpu")


def test_opcheck():
    X = string_table(24, 11)
    cats, counts, nm = fit_columns(X)
    codes = codes_of(X, cats)
    lay = OneHotLayout.from_categories(cats, counts, nm, handle_unknown="ignore", min_frequency=3, drop="if_binary")
    feat, table, slots = lay.tensors()
    olay = OrdinalLayout.from_categories(cats, counts, nm, handle_unknown="use_encoded_value", unknown_value=-1)
    ofeat, otable = olay.tensors()
    opcheck_backends(torch.ops.kernelflow.one_hot, lambda: (codes, feat, table, slots, torch.empty(24, lay.width)))
    opcheck_backends(torch.ops.kernelflow.ordinal_encode,
                     lambda: (codes, ofeat, otable, torch.empty(24, 3, dtype=torch.float64)))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_property_random_configs_match_sklearn(seed):
    """Random columns, missing rates, handle_unknown, min_frequency, max_categories and drop on the
    C++ kernel: same output, same names and the same errors as scikit-learn's encoders."""
    g = np.random.default_rng(seed)
    n, F, k = int(g.integers(1, 50)), int(g.integers(1, 4)), int(g.integers(1, 7))
    words = np.array([f"w{i}" for i in range(k)], dtype=object)
    X = g.choice(words, size=(n, F), p=g.dirichlet(np.ones(k)))
    X[g.random((n, F)) < g.choice([0, 0.1, 0.4])] = np.nan
    Xt = g.choice(np.append(words, "zz"), size=(10, F))
    Xt[g.random((10, F)) < 0.2] = np.nan
    mf = [None, 1, 2, 3, 0.1, 0.3][int(g.integers(6))]
    mc = [None, 1, 2, 3, 5][int(g.integers(5))]
    cfg = dict(handle_unknown=str(g.choice(["ignore", "infrequent_if_exist", "error"])), min_frequency=mf,
               max_categories=mc, drop=[None, "first", "if_binary"][int(g.integers(3))])
    cats, counts, nm = fit_columns(X)
    codes = codes_of(Xt, cats)

    def outcome(fn):
        try:
            return fn(), None
        except ValueError as e:
            return None, e

    enc = OneHotEncoder(sparse_output=False, **cfg).fit(X)
    ref, ref_err = outcome(lambda: sk(enc.transform, Xt))
    lay = OneHotLayout.from_categories(cats, counts, nm, **cfg)
    got, err = outcome(lambda: one_hot(codes, lay, backend="cpu").numpy())
    assert (err is None) == (ref_err is None), (err, ref_err)
    if err is None:
        np.testing.assert_array_equal(got, ref)
        assert list(lay.feature_names) == list(enc.get_feature_names_out())
    ocfg = dict(min_frequency=mf, max_categories=mc)
    if g.random() < 0.5:
        ocfg.update(handle_unknown="use_encoded_value", unknown_value=-1)
    if g.random() < 0.5:
        ocfg.update(encoded_missing_value=-5)
    oref, oref_err = outcome(lambda: OrdinalEncoder(**ocfg).fit(X).transform(Xt))
    olay = OrdinalLayout.from_categories(cats, counts, nm, **ocfg)
    ogot, oerr = outcome(lambda: ordinal_encode(codes, olay, backend="cpu").numpy())
    assert (oerr is None) == (oref_err is None), (oerr, oref_err)
    if oerr is None:
        np.testing.assert_array_equal(ogot, oref)


def test_torch_compile_fullgraph_without_error_checks():
    """Layouts that cannot raise skip the error read-back, so a compiled graph has no host sync."""
    cats = [np.array(["a", "b", "c"]), np.array([1, 2])]
    lay = OneHotLayout.from_categories(cats, handle_unknown="ignore")
    olay = OrdinalLayout.from_categories(cats, handle_unknown="use_encoded_value", unknown_value=-1)
    assert not lay.can_raise and not olay.can_raise
    assert OneHotLayout.from_categories(cats).can_raise and OrdinalLayout.from_categories(cats).can_raise
    codes = torch.tensor([[0, 1], [1, 0], [-1, 5]], dtype=torch.int32)
    f = torch.compile(lambda c: one_hot(c, lay, backend="cpu") * 2, fullgraph=True, backend="eager")
    assert torch.equal(f(codes), one_hot(codes, lay, backend="torch") * 2)
    g = torch.compile(lambda c: ordinal_encode(c, olay, backend="cpu") + 1, fullgraph=True, backend="eager")
    assert torch.equal(g(codes), ordinal_encode(codes, olay, backend="torch") + 1)
