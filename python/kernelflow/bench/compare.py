"""How benchmark outputs are compared: the error measure, and the closed form that makes
scikit-learn's two preprocessing steps one fused transform."""

from __future__ import annotations

import numpy as np
import torch


def max_rel_diff(a, b, block: int = 1 << 20) -> float:
    """max |a - b| / max(|a|, 1) over all elements (relative for |a| >= 1, absolute below, so
    values near zero after centering do not blow the ratio up); NaN positions must agree.
    Computed over blocks of about ``block`` elements (whole rows), so comparing two outputs of
    gigabytes needs no float64 copies of them."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    a2 = a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, 1)  # [rows, rest]
    b2 = b.reshape(a2.shape)
    step = max(1, block // max(1, a2.shape[1]))
    worst = 0.0
    for i in range(0, a2.shape[0], step):
        x = a2[i:i + step].astype(np.float64)
        y = b2[i:i + step].astype(np.float64)
        nx, ny = np.isnan(x), np.isnan(y)
        if (nx != ny).any():
            return float("inf")
        x[nx] = 0
        y[ny] = 0
        d = np.abs(x - y) / np.maximum(np.abs(x), 1.0)
        worst = max(worst, float(d.max()))
    return worst


def impute_scale_params(stats: np.ndarray | torch.Tensor, rows: int, fill: np.ndarray | None = None) -> np.ndarray:
    """numeric_transform parameters equal to SimpleImputer(mean) then StandardScaler.

    stats: [6, cols] float64 from column_stats (finite count n, NaN count, mean, M2, min, max).
    SimpleImputer fills the rows - n missing entries with f (the mean rounded to the data's
    float32, as sklearn stores it); StandardScaler then sees, over all rows,
        mean' = (n mean + k f) / rows,   M2' = M2 + n (mean - mean')^2 + k (f - mean')^2,   k = rows - n,
    and scales by sqrt(M2' / rows) (f = mean gives mean' = mean, M2' = M2). Zero variance ->
    scale 1 (sklearn). A column with no finite value (dropped by SimpleImputer) is imputed with 0.
    """
    s = stats.cpu().numpy() if isinstance(stats, torch.Tensor) else np.asarray(stats, dtype=np.float64)
    from kernelflow.ops.transform import transform_params  # noqa: PLC0415

    n, mean, m2 = s[0], s[2], s[3]
    mean = np.where(n > 0, mean, 0.0)
    f = mean.astype(np.float32).astype(np.float64) if fill is None else np.asarray(fill, dtype=np.float64)
    rows = max(int(rows), 1)
    k = rows - n
    mean2 = (n * mean + k * f) / rows
    m2_2 = m2 + n * (mean - mean2) ** 2 + k * (f - mean2) ** 2
    scale = np.sqrt(m2_2 / rows)
    # sklearn treats a variance within rounding of zero as constant and keeps the column unscaled
    scale = np.where(scale <= 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean2), 1.0), 1.0, scale)
    return transform_params(s.shape[1], fill=f, shift=mean2, inv_scale=1.0 / scale)
