"""Every CPU code path of the transform, table and one-hot kernels (each ISA level this CPU runs,
forced with ``_C.set_cpu_isa``; plain and streaming stores, forced with ``_C.set_xform_nt_threshold``)
against the float64 references, with NaN, inf, huge, denormal, empty, strided, sliced and in-place
cases. The transform computes in float64 with separate roundings, so float32 / float64 outputs
equal the reference bit for bit on every path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernelflow._ext import require_ext
from kernelflow.ops import (
    TableSpec,
    numeric_transform,
    numeric_transform_reference,
    table_transform,
    table_transform_reference,
    transform_params,
)
from kernelflow.ops.onehot import OneHotLayout, OrdinalLayout, one_hot, one_hot_reference, ordinal_encode, ordinal_encode_reference

C = require_ext()
ORDER = ["portable", "avx2", "avx512"]
LEVELS = ORDER[: ORDER.index(C.cpu_isa_detected()) + 1]


@pytest.fixture(params=[(lv, nt) for lv in LEVELS for nt in ("plain", "stream")], ids=lambda p: f"{p[0]}-{p[1]}")
def cpu_path(request):
    """Force one ISA level and store kind for the test; restore automatic choice after."""
    level, stores = request.param
    C.set_cpu_isa(level)
    C.set_xform_nt_threshold(0 if stores == "stream" else 1 << 62)
    try:
        yield level
    finally:
        C.set_cpu_isa("auto")
        C.set_xform_nt_threshold(-1)


def hostile_matrix(rows, cols, dtype, seed=0):
    """Normal values plus NaN, +-inf, huge, denormal, signed zeros and values at the clip bounds."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g, dtype=torch.float64) * 3
    n = rows * cols
    if n:
        big = 1e300 if dtype == torch.float64 else 3e38
        tiny = 1e-310 if dtype == torch.float64 else 1e-40  # denormal in the input type
        special = torch.tensor([float("nan"), float("inf"), -float("inf"), big, -big, tiny, -tiny, 0.0, -0.0, -2.0, 2.0],
                               dtype=torch.float64)
        idx = torch.randint(0, n, (max(1, n // 4),), generator=g)
        x.view(-1)[idx] = special[torch.randint(0, len(special), idx.shape, generator=g)]
    return x.to(dtype)


def hostile_params(cols, seed=0):
    g = np.random.default_rng(seed)
    fill = g.normal(size=cols)
    fill[::5] = np.nan  # not imputed: NaN passes through
    lo = np.where(g.random(cols) < 0.5, -2.0, -np.inf)
    hi = np.where(g.random(cols) < 0.5, 2.0, np.inf)
    shift = g.normal(size=cols) * 1e3
    shift[::7] = 2008.03  # a year-like mean: float32 would lose its digits
    inv = g.uniform(0.1, 3, cols)
    inv[::6] = 1e-300  # with fill = 1e300 below: float32 parameters would give inf * 0
    fill[1::6] = 1e300
    off = g.normal(size=cols)
    return torch.from_numpy(transform_params(cols, fill=fill, lo=lo, hi=hi, shift=shift, inv_scale=inv, offset=off))


def assert_same(got, ref):
    g, r = got.double(), ref.double()
    assert torch.equal(torch.isnan(g), torch.isnan(r))
    m = ~torch.isnan(r)
    assert torch.equal(g[m], r[m]), float((g[m] - r[m]).abs().max()) if m.any() else 0.0


def assert_rel(got, ref, rtol):
    """Equal NaN and inf positions; elsewhere |got - ref| <= rtol * max(|ref|, 1)."""
    g, r = got.double(), ref.double()
    assert torch.equal(torch.isnan(g), torch.isnan(r))
    m = ~torch.isnan(r)
    g, r = g[m], r[m]
    same = g == r
    err = torch.where(same, 0.0, (g - r).abs() / r.abs().clamp_min(1))
    assert err.numel() == 0 or float(err.max()) <= rtol, float(err.max())


SHAPES = [(0, 5), (5, 0), (1, 1), (1, 37), (37, 1), (3, 16), (257, 3), (129, 32), (33, 17), (20, 70)]


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_transform_every_path_equals_float64_reference(cpu_path, shape, in_dtype, out_dtype):
    assert C.transform_cpu_path() == cpu_path
    x = hostile_matrix(*shape, in_dtype, seed=shape[0] * 131 + shape[1])
    p = hostile_params(shape[1], seed=shape[1])
    out = numeric_transform(x, p, out_dtype, backend="cpu")
    assert out.dtype == out_dtype and out.shape == x.shape
    assert_same(out, numeric_transform_reference(x, p, out_dtype))


@pytest.mark.parametrize("layout", ["fortran", "column_slice", "col_stride2", "out_slice", "in_place", "unaligned_out"])
def test_transform_layouts(cpu_path, layout):
    rows, cols = 203, 19
    base = hostile_matrix(rows, cols + 8, torch.float32, seed=3)
    p = hostile_params(cols, seed=4)
    if layout == "fortran":
        x = base[:, :cols].t().contiguous().t()
    elif layout == "column_slice":
        x = base[:, 3:3 + cols]  # unit column stride, row stride > cols
    elif layout == "col_stride2":
        x = hostile_matrix(rows, 2 * cols, torch.float32, seed=5)[:, ::2]
    else:
        x = base[:, :cols].contiguous()
    ref = numeric_transform_reference(x, p, torch.float32)
    if layout in ("out_slice", "unaligned_out"):
        wide = torch.full((rows, cols + 9), 7.0)
        o0 = 1 if layout == "unaligned_out" else 4
        out = numeric_transform(x, p, backend="cpu", out=wide[:, o0:o0 + cols])
        assert_same(out, ref)
        assert torch.all(wide[:, :o0] == 7.0) and torch.all(wide[:, o0 + cols:] == 7.0)  # nothing written outside
    elif layout == "in_place":
        y = x.clone()
        numeric_transform(y, p, backend="cpu", out=y)
        assert_same(y, ref)
    else:
        assert_same(numeric_transform(x, p, "float32", backend="cpu"), ref)


def test_transform_flat_stream_split_at_any_column(cpu_path):
    # contiguous rows * cols not a multiple of 16, thread pieces starting mid-row
    for rows, cols in [(1000, 3), (77, 13), (5, 1), (1, 1000), (333, 48)]:
        x = hostile_matrix(rows, cols, torch.float64, seed=rows + cols)
        p = hostile_params(cols, seed=cols)
        assert_same(numeric_transform(x, p, "float32", backend="cpu"), numeric_transform_reference(x, p, torch.float32))


def test_transform_lo_above_hi_keeps_reference_semantics(cpu_path):
    # the kernel formula equals the reference even for bounds the builder would refuse
    x = torch.tensor([[-5.0, 0.0, 5.0, float("nan")]]).t().contiguous()
    p = torch.tensor([[0.0], [1.0], [-1.0], [0.0], [1.0], [0.0]], dtype=torch.float64)
    assert_same(numeric_transform(x, p, "float64", backend="cpu"), numeric_transform_reference(x, p, torch.float64))


def test_transform_cpu_errors_name_the_argument():
    x = torch.zeros(4, 3)
    p = torch.zeros(6, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="out must have the shape of x"):
        C.numeric_transform_cpu((x.data_ptr(), 4, 3, 3, 1, 0), p.data_ptr(), (x.data_ptr(), 4, 2, 2, 1, 0))
    with pytest.raises(ValueError, match="x must have dtype"):
        C.numeric_transform_cpu((x.data_ptr(), 4, 3, 3, 1, 4), p.data_ptr(), (x.data_ptr(), 4, 3, 3, 1, 0))
    with pytest.raises(ValueError, match="params has a null data pointer"):
        C.numeric_transform_cpu((x.data_ptr(), 4, 3, 3, 1, 0), 0, (x.data_ptr(), 4, 3, 3, 1, 0))
    with pytest.raises(ValueError, match="unit column stride"):
        C.numeric_transform_cpu((x.data_ptr(), 4, 3, 3, 1, 0), p.data_ptr(), (x.data_ptr(), 4, 3, 3, 2, 0))


# ---- whole table ----


def make_table(Fn, seed):
    g = np.random.default_rng(seed)
    fill = g.normal(size=Fn)
    fill[::4] = np.nan
    p = np.vstack([transform_params(Fn, fill=fill, lo=np.where(g.random(Fn) < 0.5, -1.5, -np.inf),
                                    hi=np.where(g.random(Fn) < 0.5, 1.5, np.inf), shift=g.normal(size=Fn) * 100,
                                    inv_scale=g.uniform(0.5, 2, Fn), offset=g.normal(size=Fn)),
                   # a leading run of plain columns (the vector path), then log1p / sqrt / plain
                   [[0] * min(Fn, 5) + [[1, 2, 0][j % 3] for j in range(Fn - 5)]],
                   np.zeros((1, Fn))])
    cats = [dict(off=Fn + 1, width=4, mode="onehot", slots=[0, 1, 2, 3, -1], unknown_slot=3),
            dict(off=Fn + 5, width=2, mode="onehot", slots=[-1, 0, 1], unknown_slot=-1),
            dict(off=Fn + 7, width=1, mode="ordinal", slots=[0, 1, 2], unknown_value=-7.0)]
    return TableSpec.build(Fn + 8, p, list(range(Fn)), ind_src=[1], ind_out=[Fn], cats=cats)


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("N,Fn", [(0, 3), (1, 3), (300, 9), (41, 24)])
def test_table_every_path(cpu_path, N, Fn, in_dtype, out_dtype):
    assert C.table_cpu_path() == cpu_path
    spec = make_table(Fn, seed=Fn)
    x = hostile_matrix(N, Fn, in_dtype, seed=N + Fn)
    x[:, 5:] = x[:, 5:].abs()  # log1p / sqrt columns
    codes = torch.randint(-2, 6, (N, 3), generator=torch.Generator().manual_seed(N), dtype=torch.int32)
    out = torch.full((N, spec.W), 12345.0, dtype=out_dtype)  # poisoned: every element must be written
    table_transform(x, codes, spec, out=out, backend="cpu")
    ref = table_transform_reference(x, codes, spec, torch.float64)
    # float64 arithmetic; the nonlinear columns use libm (log1p / sqrt) and the reference torch's, so
    # they may differ in the last float64 bit, and then round to a neighbouring float32 / bfloat16
    # (bfloat16 also rounds through float32)
    rtol = {torch.float64: 1e-15, torch.float32: 2 ** -23, torch.bfloat16: 2 ** -7}[out_dtype]
    assert_rel(out, ref.to(out_dtype), rtol)


def test_table_strided_input_and_output_slice(cpu_path):
    spec = make_table(9, seed=1)
    x = hostile_matrix(70, 18, torch.float32, seed=2)[:, ::2]
    x[:, 5:] = x[:, 5:].abs()
    codes = torch.randint(-2, 6, (3, 70), dtype=torch.int32).t()  # column-major codes
    wide = torch.zeros(70, spec.W + 5)
    out = table_transform(x, codes, spec, out=wide[:, 3:3 + spec.W], backend="cpu")
    assert_rel(out, table_transform_reference(x, codes, spec, torch.float64).float(), 2 ** -23)
    assert torch.all(wide[:, :3] == 0) and torch.all(wide[:, 3 + spec.W:] == 0)


def test_table_lo_above_hi_keeps_reference_semantics(cpu_path):
    # bounds the builders refuse still give the reference's answer (lo wins below lo, hi above)
    p = np.zeros((8, 2))
    p[0], p[1], p[2], p[4] = np.nan, 1.0, -1.0, 1.0
    spec = TableSpec.build(2, p, [0, 1])
    x = torch.tensor([[-5.0, 5.0], [0.0, 0.0], [5.0, -5.0], [float("nan"), 2.0]])
    codes = torch.zeros((4, 0), dtype=torch.int32)
    out = table_transform(x, codes, spec, backend="cpu")
    assert_same(out, table_transform_reference(x, codes, spec, torch.float64).float())


# ---- one-hot / ordinal ----


def test_one_hot_every_path(cpu_path):
    assert C.onehot_cpu_path() == cpu_path
    g = np.random.default_rng(0)
    cats = [np.array([f"c{k}" for k in range(K)], dtype=object) for K in (3, 7, 1, 12)]
    counts = [g.integers(1, 50, len(c)) for c in cats]
    lay = OneHotLayout.from_categories(cats, counts, [0, 0, 0, 0], handle_unknown="infrequent_if_exist", min_frequency=10)
    for N in (0, 1, 5, 700):
        codes = torch.from_numpy(np.stack([g.integers(-1, len(c) + 2, N) for c in cats], 1).astype(np.int32))
        codes[codes == len(cats[0])] = -1
        feat, table, _ = lay.tensors("cpu")
        for dt in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            ref = one_hot_reference(codes, feat, table, dt, lay.width)[0]
            assert torch.equal(one_hot(codes, lay, out_dtype=dt, backend="cpu"), ref)
            wide = torch.full((N, lay.width + 3), 9.0, dtype=dt)
            one_hot(codes.t().contiguous().t(), lay, out=wide[:, 1:1 + lay.width], backend="cpu")
            assert torch.equal(wide[:, 1:1 + lay.width], ref)
            assert torch.all(wide[:, :1] == 9) and torch.all(wide[:, 1 + lay.width:] == 9)


def test_one_hot_errors_counted_on_every_path(cpu_path):
    cats = [np.array(["a", "b"], dtype=object), np.array(["x", "y", "z"], dtype=object)]
    lay = OneHotLayout.from_categories(cats, handle_unknown="error")
    codes = torch.tensor([[0, 1]] * 300 + [[5, 0], [0, 9], [1, 9]], dtype=torch.int32)
    with pytest.raises(ValueError, match="Found 1 unknown categories in column 0"):
        one_hot(codes, lay, backend="cpu")
    with pytest.raises(ValueError, match="column 1"):
        one_hot(codes[[0, -1, -2]], lay, backend="cpu")


def test_ordinal_every_path(cpu_path):
    cats = [np.array([f"c{k}" for k in range(K)], dtype=object) for K in (4, 2, 9)]
    lay = OrdinalLayout.from_categories(cats, handle_unknown="use_encoded_value", unknown_value=-1)
    g = np.random.default_rng(1)
    N = 513
    codes = torch.from_numpy(np.stack([g.integers(-2, len(c) + 2, N) for c in cats], 1).astype(np.int32))
    feat, table, *_ = lay.tensors("cpu")
    for dt in (torch.float32, torch.float64, torch.float16, torch.int64):
        ref = ordinal_encode_reference(codes, feat, table, dt)[0]
        assert torch.equal(ordinal_encode(codes, lay, out_dtype=dt, backend="cpu"), ref)


def test_streaming_threshold_setting():
    C.set_xform_nt_threshold(12345)
    try:
        assert C.xform_nt_threshold() == 12345
    finally:
        C.set_xform_nt_threshold(-1)
    assert C.xform_nt_threshold() > 0  # the last-level cache size
