"""Synthetic benchmark inputs, seeded, never zeros: one generator per suite's data kind."""

from __future__ import annotations

import numpy as np
import torch


def make_data(rows: int, cols: int, nan: float, seed: int = 0) -> np.ndarray:
    """float32 [rows, cols], column j ~ N(loc_j, scale_j) with a fraction ``nan`` of NaN."""
    rng = np.random.default_rng(seed)
    loc = rng.uniform(-5, 5, cols).astype(np.float32)
    scale = rng.uniform(0.5, 5, cols).astype(np.float32)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    x *= scale
    x += loc
    if nan > 0:
        x[rng.random((rows, cols)) < nan] = np.nan
    return x


def make_table(rows: int, n_num: int = 24, n_cat: int = 8, n_levels: int = 50, nan: float = 0.05, seed: int = 0):
    """A pandas DataFrame: n_num float32 columns (``nan`` missing) and n_cat string columns with
    skewed level frequencies (Dirichlet(0.5)) and ``nan`` missing, like real categorical data."""
    import pandas as pd  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    data = {}
    for i in range(n_num):
        col = (rng.normal(size=rows) * (i + 1) + 10 * i).astype(np.float32)
        col[rng.random(rows) < nan] = np.nan
        data[f"num{i}"] = col
    levels = np.array([f"level_{k:02d}" for k in range(n_levels)], dtype=object)
    for i in range(n_cat):
        p = rng.dirichlet(np.full(n_levels, 0.5))
        col = levels[rng.choice(n_levels, size=rows, p=p)]
        col[rng.random(rows) < nan] = None
        data[f"cat{i}"] = pd.array(col, dtype="str")
    return pd.DataFrame(data)


def make_norm_inputs(rows: int, hidden: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(x [rows, hidden], weight [hidden], bias [hidden], dy [rows, hidden]) float32, x offset
    from zero so the mean matters."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, hidden, generator=g) * 2 + 0.5
    w = torch.randn(hidden, generator=g) * 0.5 + 1
    b = torch.randn(hidden, generator=g) * 0.1
    dy = torch.randn(rows, hidden, generator=g)
    return x, w, b, dy


def make_logits(rows: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(student [rows, classes], teacher [rows, classes]) float32 logits and labels [rows] int64,
    every 97th label from row 1 on ignored (-100) as padding would be (row 0 never is, so no batch
    is all-ignored: there F.cross_entropy's mean is NaN and kernelflow's CE term 0, by design)."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(rows, classes, generator=g) * 2
    t = torch.randn(rows, classes, generator=g) * 2
    y = torch.randint(0, classes, (rows,), generator=g)
    y[1::97] = -100
    return s, t, y
