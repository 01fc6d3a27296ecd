"""Every CPU code path (portable / avx2 / avx512, forced with ``_C.set_cpu_isa``) of the statistics
families against the float64 reference, numpy and exact hand-computed values: column_stats
(row-major strips of every width, column-major runs, strided views, the one-pass shifted sums and
their two-pass fallback, the all-finite fast variant and its careful re-run), column_quantiles
(radix selection: equal to numpy.nanpercentile bit for bit), weighted and sparse statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from kernelflow._ext import require_ext
from kernelflow.ops import column_stats, column_stats_reference
from kernelflow.ops.quantile import column_quantiles
from kernelflow.ops.sparse import as_compressed, sparse_column_stats, sparse_column_stats_reference
from kernelflow.ops.weighted import weighted_column_stats, weighted_column_stats_reference

_C = require_ext()
_ORDER = ["portable", "avx2", "avx512"]
LEVELS = _ORDER[: _ORDER.index(_C.cpu_isa_detected()) + 1]


@pytest.fixture(params=LEVELS)
def level(request):
    _C.set_cpu_isa(request.param)
    try:
        yield request.param
    finally:
        _C.set_cpu_isa("auto")


def check_stats(got, ref, rtol=1e-12, scale=None, weighted=False):
    """count, NaN count, min, max exact; mean and M2 to float64 accuracy, relative to max(|ref|, 1)
    (scale [2, cols]: relative to max(|ref|, scale) instead, for means near 0 of large values).
    weighted: rows 0 and 1 are sums of float weights, whose rounding depends on the order."""
    assert got.shape == ref.shape and got.dtype == torch.float64
    for i in ((4, 5) if weighted else (0, 1, 4, 5)):
        assert torch.equal(got[i], ref[i]), (i, got[i], ref[i])
    for i in ((0, 1, 2, 3) if weighted else (2, 3)):
        if ref.shape[1]:
            den = ref[i].abs().clamp_min(1.0) if scale is None or i < 2 else torch.maximum(ref[i].abs(), scale[i - 2])
            diff = torch.where(got[i] == ref[i], 0.0, (got[i] - ref[i]).abs())  # equal infinities: no error
            err = (diff / den).max()
            assert err <= rtol, (i, float(err))


def hostile(rows, cols, dtype, seed):
    g = np.random.default_rng(seed)
    x = g.standard_normal((rows, cols)) * 10 + 3
    if rows and cols:
        x[g.random((rows, cols)) < 0.03] = np.nan
        x[g.random((rows, cols)) < 0.005] = np.inf
        x[g.random((rows, cols)) < 0.005] = -np.inf
    return torch.from_numpy(x.astype(dtype))


def test_paths_named(level):
    assert _C.cpu_isa() == level
    for name in ("stats_cpu_path", "quantile_cpu_path", "weighted_cpu_path"):
        assert getattr(_C, name)() == level
    assert _C.sparse_cpu_path() == "portable"


# every strip width and remainder: 1..3 (scalar tails), 8 / 9 (one avx2 strip), 31..33, 40
@pytest.mark.parametrize("cols", [1, 3, 5, 8, 9, 17, 31, 32, 33, 40])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_major_widths(level, cols, dtype):
    x = hostile(9000, cols, dtype, seed=cols)
    check_stats(column_stats(x, backend="cpu"), column_stats_reference(x))


@pytest.mark.parametrize("layout", ["fortran", "strided_rows", "strided_both", "row_stride"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layouts(level, layout, dtype):
    base = hostile(20000, 12, dtype, seed=7)
    x = {
        "fortran": base.t().contiguous().t(),           # column-major runs
        "strided_rows": base.t().contiguous().t()[::2],  # column-major with a row step: rs 2
        "strided_both": base[::3, ::2],                  # neither stride is 1
        "row_stride": base[:, 1:10],                     # cs 1, rs 12 (a column slice)
    }[layout]
    check_stats(column_stats(x, backend="cpu"), column_stats_reference(x))


def test_clean_dirty_clean_blocks(level):
    # the fast variant on clean blocks, the careful re-run on the dirty block, fast again later
    x = np.random.default_rng(3).standard_normal((120_000, 16)).astype(np.float32)
    x[50_000, 3] = np.nan
    x[50_001, 5] = np.inf
    x[90_000:90_010, 7] = np.nan
    t = torch.from_numpy(x)
    check_stats(column_stats(t, backend="cpu"), column_stats_reference(t))
    f = torch.from_numpy(np.asfortranarray(x))
    check_stats(column_stats(f, backend="cpu"), column_stats_reference(f))


@pytest.mark.parametrize("order", ["C", "F"])
def test_shift_fallback(level, order):
    # mean far from the first value / from the previous block's mean: the one-pass sums would
    # cancel, so those blocks take the two-pass; a trend makes every block's mean move
    g = np.random.default_rng(5)
    rows = 50_000
    x = np.empty((rows, 4))
    x[:, 0] = 1e8 + g.standard_normal(rows)                         # offset >> spread
    x[:, 1] = np.linspace(-1e6, 1e6, rows) + g.standard_normal(rows)  # trend
    x[:, 2] = np.where(np.arange(rows) < 10, 1e12, 1.0) + g.standard_normal(rows) * 1e-3  # outliers first
    x[:, 3] = 7.25                                                    # constant: M2 exactly 0
    for dtype in (np.float64, np.float32):
        t = torch.from_numpy(np.asarray(x.astype(dtype), order=order))
        got = column_stats(t, backend="cpu")
        amax = t.abs().amax(0).to(torch.float64)  # a mean near 0 of values near 1e6: error ~ eps * 1e6
        check_stats(got, column_stats_reference(t), rtol=1e-13, scale=torch.stack([amax, amax * amax * rows]))
        assert got[3, 3] == 0.0 and got[2, 3] == 7.25
        xd = t.numpy().astype(np.float64)
        np.testing.assert_allclose(got[2].numpy(), xd.mean(0), rtol=1e-13, atol=1e-13 * float(amax.max()))
        np.testing.assert_allclose(got[3].numpy() / rows, xd.var(0), rtol=1e-10)


def test_extreme_values(level):
    f32 = np.float32
    # [[1e20], [-1e20]] in float32: M2 = 2e40 (overflows in fp32)
    s = column_stats(torch.tensor([[1e20], [-1e20]], dtype=torch.float32), backend="cpu")
    v = float(f32(1e20))  # 1.0000000200408773e20
    assert s[:, 0].tolist() == [2, 0, 0.0, 2 * v * v, -v, v]
    # columns of 3e38 (sum overflows fp32), denormals (squares flush in fp32)
    big = np.full((5000, 9), 3e38, dtype=f32)
    big[::2] = -3e38
    tiny = np.full((5000, 9), 1e-44, dtype=f32)
    tiny[::3] = 3e-45
    for a in (big, tiny):
        t = torch.from_numpy(a)
        got = column_stats(t, backend="cpu")
        # identical squares summed in order within a block (<= 8192 rows): rounding errors of one
        # sign add up to n * eps at worst, 1e-12 here
        check_stats(got, column_stats_reference(t), rtol=1e-12)
        assert torch.isfinite(got[3]).all() and (got[3] > 0).all()
    # inf only, NaN only, mixed, one row, empty
    x = torch.tensor([[np.inf, np.nan, 1.0], [-np.inf, np.nan, np.nan]], dtype=torch.float32)
    got = column_stats(x, backend="cpu")
    assert got[:, 0].tolist() == [0, 0, 0, 0, np.inf, -np.inf]
    assert got[:, 1].tolist() == [0, 2, 0, 0, np.inf, -np.inf]
    assert got[:, 2].tolist() == [1, 1, 1.0, 0.0, 1.0, 1.0]
    one = column_stats(torch.tensor([[2.5, -1.0, np.nan]]), backend="cpu")
    assert one[:, 0].tolist() == [1, 0, 2.5, 0, 2.5, 2.5]
    empty = column_stats(torch.empty((0, 40)), backend="cpu")
    assert (empty[0] == 0).all() and (empty[4] == np.inf).all() and (empty[5] == -np.inf).all()
    # float64 values whose squares overflow: M2 is inf on the reference and on every path
    h = torch.tensor([[1e300], [-1e300], [1e300]], dtype=torch.float64)
    check_stats(column_stats(h, backend="cpu"), column_stats_reference(h))


def test_matches_numpy(level):
    x = np.random.default_rng(11).standard_normal((30_000, 21)) * 3 - 1
    x[np.random.default_rng(12).random(x.shape) < 0.1] = np.nan
    s = column_stats(torch.from_numpy(x), backend="cpu").numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(s[0], np.isfinite(x).sum(0))
        np.testing.assert_allclose(s[2], np.nanmean(x, 0), rtol=1e-13)
        np.testing.assert_allclose(s[3] / s[0], np.nanvar(x, 0), rtol=1e-12)
        np.testing.assert_array_equal(s[4], np.nanmin(x, 0))
        np.testing.assert_array_equal(s[5], np.nanmax(x, 0))


# ---- quantiles -------------------------------------------------------------------------------
def nanpct(x, q):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(np.asarray(x, dtype=np.float64), q, axis=0)


def quantile_cases(dtype):
    g = np.random.default_rng(21)
    rows = 30_000
    cols = [
        g.standard_normal(rows),
        g.integers(0, 5, rows).astype(float),          # few distinct values: bins hold most rows
        np.full(rows, -2.5),                           # constant
        np.full(rows, np.nan),                         # all NaN
        g.standard_normal(rows) * 1e-30,               # tiny (float64: rounds to float32 denormals / 0)
        np.where(g.random(rows) < 0.5, -0.0, 0.0),     # signed zeros
        g.exponential(size=rows) * 1e30,               # wide range
        np.where(g.random(rows) < 0.01, np.inf, g.standard_normal(rows)),
    ]
    if dtype == np.float64:
        cols.append(g.standard_normal(rows) * 1e300)  # beyond float32: first digit saturates
    x = np.stack(cols, 1)
    x[g.random(x.shape) < 0.05] = np.nan
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("q", [[0.25, 0.5, 0.75], [0.0, 1.0], [0.001, 0.999, 0.5], list(np.linspace(0, 1, 101))])
def test_quantiles_equal_numpy(level, dtype, q):
    x = quantile_cases(dtype)
    for arr in (x, np.asfortranarray(x), x[::3, ::2]):
        got = column_quantiles(torch.from_numpy(arr), q, backend="cpu").numpy()
        ref = nanpct(arr, q)
        np.testing.assert_array_equal(got, ref)


def test_quantiles_wide_and_small(level):
    g = np.random.default_rng(4)
    x = g.standard_normal((3000, 70)).astype(np.float32)  # three column groups
    x[g.random(x.shape) < 0.2] = np.nan
    q = [0.1, 0.5, 0.9]
    np.testing.assert_array_equal(column_quantiles(torch.from_numpy(x), q, backend="cpu").numpy(), nanpct(x, q))
    for rows in (1, 2, 5):
        y = g.standard_normal((rows, 3))
        np.testing.assert_array_equal(column_quantiles(torch.from_numpy(y), q, backend="cpu").numpy(), nanpct(y, q))
    z = column_quantiles(torch.empty((0, 4)), q, backend="cpu")
    assert z.shape == (3, 4) and torch.isnan(z).all()


def test_quantiles_reject_bad_q(level):
    with pytest.raises(ValueError):
        column_quantiles(torch.zeros((4, 2)), [1.5], backend="cpu")


# ---- weighted and sparse ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weighted_paths(level, dtype):
    x = hostile(9000, 13, dtype, seed=9)
    w = torch.from_numpy(np.random.default_rng(2).random(9000) * 3)
    w[::17] = 0.0
    got = weighted_column_stats(x, w, backend="cpu")
    check_stats(got, weighted_column_stats_reference(x, w), rtol=1e-11, weighted=True)


def test_sparse_stats_with_implicit_zeros(level):
    g = np.random.default_rng(8)
    a = sp.random(4000, 30, density=0.05, format="csr", random_state=8, dtype=np.float64)
    a.data[g.random(a.nnz) < 0.05] = np.nan
    w = g.random(4000)
    for m in (a, a.tocsc()):
        for sw in (None, w):
            got = sparse_column_stats(m, sample_weight=sw, backend="cpu")
            ref = sparse_column_stats_reference(as_compressed(m), None if sw is None else torch.from_numpy(sw))
            check_stats(got, ref, rtol=1e-11, weighted=sw is not None)
