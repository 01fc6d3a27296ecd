"""The fresh-output path of the CPU transform (``numeric_transform`` without ``out``, and
``_C.numeric_transform_cpu(..., fresh=True)``): huge-page advice and one unit of work per 2 MB page
of the output, with the first unit cut at the first page boundary. Outputs past 4 MB take that
path; these check every unit layout (flat stream with an aligned, a 64-byte-skewed and a
misaligned base; row by row when the column period is too long for the flat table) on every ISA
level and store kind against the float64 reference, bit for bit."""

from __future__ import annotations

import pytest
import torch

from kernelflow._array import mat
from kernelflow._ext import require_ext
from kernelflow.ops import numeric_transform, numeric_transform_reference

from kernelflow.ops import table_transform, table_transform_reference

from test_xform_paths import LEVELS, assert_rel, assert_same, hostile_matrix, hostile_params, make_table

C = require_ext()


@pytest.fixture(params=LEVELS)
def cpu_path(request):
    """One ISA level; the streaming-store threshold at 0, which a fresh output must ignore (it
    always takes plain stores) without changing a bit."""
    C.set_cpu_isa(request.param)
    C.set_xform_nt_threshold(0)
    try:
        yield request.param
    finally:
        C.set_cpu_isa("auto")
        C.set_xform_nt_threshold(-1)


def _fresh(x, p, dtype, offset_elems):
    """out = a view of a new buffer starting offset_elems in, written with fresh=True."""
    buf = torch.full((x.numel() + offset_elems,), float("nan"), dtype=dtype)
    out = buf[offset_elems:].view(x.shape)
    C.numeric_transform_cpu(mat(x), p.contiguous().data_ptr(), mat(out), fresh=True)
    return out


# 5 MB of float32 output (2 whole huge pages at most + the cut ends); cols 1367 (prime): the column
# period is past the flat table, so the units are rows
@pytest.mark.parametrize("rows,cols", [(40_000, 32), (40_000, 33), (1_000, 1367)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_fresh_op_matches_reference(cpu_path, rows, cols, dtype):
    x = hostile_matrix(rows, cols, torch.float32, seed=rows + cols)
    p = hostile_params(cols, seed=cols)
    got = numeric_transform(x, p, dtype, backend="cpu")
    assert got.dtype == dtype and got.shape == x.shape and got.is_contiguous()
    assert_same(got, numeric_transform_reference(x, p, dtype))


@pytest.mark.parametrize("offset", [0, 16, 3])  # page-skewed by 64 bytes; misaligned (no streaming)
@pytest.mark.parametrize("cols", [32, 7])
def test_fresh_units_cover_every_element(cpu_path, offset, cols):
    rows = (3 * (2 << 20)) // (4 * cols) + 5  # three huge pages of float32 and a bit
    x = hostile_matrix(rows, cols, torch.float32, seed=offset)
    p = hostile_params(cols, seed=1)
    got = _fresh(x, p, torch.float32, offset)
    assert_same(got, numeric_transform_reference(x, p, torch.float32))


@pytest.mark.parametrize("bounds", ["none", "nan", "one"])
@pytest.mark.parametrize("fresh", [True, False])
def test_clip_free_path(cpu_path, bounds, fresh):
    """Bounds that clip nothing (+-inf, or NaN: compares false) take the path without the clip;
    one finite bound in one column takes the clipping path; both equal the reference."""
    rows, cols = 50_000, 24
    x = hostile_matrix(rows, cols, torch.float32, seed=7)
    p = hostile_params(cols, seed=7)
    p[1], p[2] = -float("inf"), float("inf")
    if bounds == "nan":
        p[1, ::3], p[2, 1::3] = float("nan"), float("nan")
    elif bounds == "one":
        p[2, 5] = 0.5
    ref = numeric_transform_reference(x, p, torch.float32)
    got = numeric_transform(x, p, torch.float32, backend="cpu") if fresh else \
        numeric_transform(x, p, torch.float32, backend="cpu", out=torch.empty(rows, cols))
    assert_same(got, ref)
    if bounds == "one":
        assert float(got[:, 5].nan_to_num(nan=0.0).max()) <= (0.5 - float(p[3, 5])) * float(p[4, 5]) + float(p[5, 5]) + 1e-3


def test_fresh_small_and_empty():
    p = hostile_params(5, seed=2)
    for rows in (0, 1, 3):
        x = hostile_matrix(rows, 5, torch.float64, seed=rows)
        assert_same(numeric_transform(x, p, torch.float64, backend="cpu"), numeric_transform_reference(x, p, torch.float64))
    x = hostile_matrix(4, 5, torch.float32)
    assert_same(_fresh(x, p, torch.float32, 1), numeric_transform_reference(x, p, torch.float32))


def test_fresh_strided_input():
    x = hostile_matrix(60_000, 48, torch.float64, seed=5)[:, ::2]  # [60000, 24], column stride 2
    p = hostile_params(24, seed=5)
    assert_same(numeric_transform(x, p, torch.float32, backend="cpu"), numeric_transform_reference(x, p, torch.float32))


@pytest.mark.parametrize("fresh", [True, False])
def test_table_large_output_in_page_runs(fresh):
    """Outputs past 64 MB are handed out in runs of tiles of about 2 MB (and a fresh one gets
    huge-page advice): every row written, as the reference (checked on the ragged last run and a
    sample of the rest: rows are independent)."""
    spec = make_table(9, seed=3)
    N = (64 << 20) // (4 * spec.W) + 777
    x = hostile_matrix(N, 9, torch.float32, seed=4)
    x[:, 5:] = x[:, 5:].abs()
    codes = torch.randint(-2, 6, (N, 3), generator=torch.Generator().manual_seed(4), dtype=torch.int32)
    out = None if fresh else torch.full((N, spec.W), 12345.0)
    got = table_transform(x, codes, spec, out=out, backend="cpu")
    assert not (got == 12345.0).any()
    rows = torch.cat([torch.randint(0, N, (4000,), generator=torch.Generator().manual_seed(5)), torch.arange(N - 3000, N)])
    assert_rel(got[rows], table_transform_reference(x[rows], codes[rows], spec, torch.float64).float(), 2 ** -23)
