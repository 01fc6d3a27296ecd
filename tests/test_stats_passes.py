"""The three pass kinds of the CPU column_stats strips (all-finite, NaN-skipping, finite-only with
counts: one loop templated over the kind) on every ISA level, across many blocks, so that each
block starts with the kind the previous one needed and must escalate or fall back correctly:
columns that are clean, NaN only, +-inf only, NaN + inf, a lone inf in one block, all missing,
signed zeros; row-major strips of every width and column-major runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernelflow.ops import column_stats, column_stats_reference

from test_stats_paths import check_stats, level  # noqa: F401  (level: the per-ISA fixture, used by name)


def patterned(rows, cols, dtype, seed):
    g = np.random.default_rng(seed)
    x = g.standard_normal((rows, cols)) * 4 + 10
    kinds = np.arange(cols) % 8
    for j in range(cols):
        k = kinds[j]
        if k == 1:
            x[g.random(rows) < 0.05, j] = np.nan
        elif k == 2:
            x[g.random(rows) < 0.01, j] = np.inf
            x[g.random(rows) < 0.01, j] = -np.inf
        elif k == 3:
            x[g.random(rows) < 0.05, j] = np.nan
            x[g.random(rows) < 0.005, j] = np.inf
        elif k == 4:
            x[rows // 2, j] = -np.inf  # one block needs the careful pass, the next may not
            x[rows // 3: rows // 3 + 5, j] = np.nan
        elif k == 5:
            x[:, j] = np.nan
            x[rows // 4, j] = np.inf  # no finite value at all
        elif k == 6:
            x[:, j] = np.where(g.random(rows) < 0.5, 0.0, -0.0)
            x[rows // 5, j] = np.nan
        elif k == 7 and rows > 10:
            x[: rows // 2, j] = np.inf  # infinite first half (blocks with no finite value), then clean
    return torch.from_numpy(x.astype(dtype))


@pytest.mark.parametrize("cols", [1, 5, 8, 13, 32, 37])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_major_passes(level, cols, dtype):
    x = patterned(30_000, cols, dtype, seed=cols)  # >= 4 blocks of 8192 rows at most
    check_stats(column_stats(x, backend="cpu"), column_stats_reference(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_major_passes(level, dtype):
    x = patterned(40_000, 16, dtype, seed=3).T.contiguous().T  # rs == 1
    check_stats(column_stats(x, backend="cpu"), column_stats_reference(x))


def test_no_finite_value_column(level):
    x = torch.tensor([[np.nan, np.inf], [np.inf, -np.inf], [np.nan, np.nan]] * 3000, dtype=torch.float32)
    got = column_stats(x, backend="cpu")
    assert got[:, 0].tolist() == [0, 6000, 0, 0, np.inf, -np.inf]
    assert got[:, 1].tolist() == [0, 3000, 0, 0, np.inf, -np.inf]
