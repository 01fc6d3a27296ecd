"""The numeric statistics a fit step reads, "the data as that step sees it", in two forms behind
one interface:

``ChunkStats``   one chunk whose data is at hand (``fit``): moments from ``column_stats`` and
                 exact quantiles from the quantile op, of the imputed / clipped / transformed
                 block materialised once when a step first asks for it.
``MergedStats``  the mergeable summary of any number of chunks (``partial_fit``, Dask
                 partitions, torch.distributed ranks): moments merged by Chan's rule, quantiles
                 from a ``QuantileSketch``, and the moments of the nonlinear transform of the
                 observed values. A statistic that does not merge (moments after clipping, the
                 power transforms' maximum-likelihood lambdas) raises ``NotMergeable``.

Both are immutable views: ``imputed`` / ``clipped`` / ``transformed`` return the view of the next
step. Imputation's effect on the moments has a closed form (the observed values' moments merged
with k copies of the fill): the merged form always uses it, and so does one chunk unless a later
step materialises the imputed block anyway (clipping, a nonlinear transform, a quantile), when a
column_stats pass over that block measures them, as a direct fit on the imputed data would. The
two agree to rounding (a few ulps; more in a bound like mean - k std where terms cancel).
Everything is float64 on the host (the kernels accumulate in float64).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import torch

from kernelflow import ops
from kernelflow.preprocessing._base import column_quantiles
from kernelflow.preprocessing._params import constant_stats, is_constant_feature

SKETCH_K = 2048  # rank error <= H n / k (kernelflow.ops.QuantileSketch); exact below k values
MERGEABLE = ("no power transform, and no clipping before standard / min-max / max-abs scaling (the "
             "moments of clipped data do not merge)")


class NotMergeable(ValueError):
    def __init__(self):
        super().__init__(f"partial_fit and distributed fits need {MERGEABLE}; fit this policy in one call")


def nonlinear(v: np.ndarray | torch.Tensor, name: str | None, lam: np.ndarray) -> torch.Tensor:
    """``name`` (None, log1p, sqrt, yeo-johnson, box-cox) applied per column of v [N, F] or [F]."""
    t = torch.as_tensor(v, dtype=torch.float64)
    if name is None:
        return t
    if t.dim() == 1:
        return nonlinear(t[None, :], name, lam)[0]
    F = t.shape[1]
    fn = torch.full((F,), ops.FN_CODES[name], dtype=torch.int64)
    return ops.nonlinear_reference(t, fn, torch.as_tensor(lam, dtype=torch.float64))


def power_lambdas(X: np.ndarray, method: str, names: Sequence[str]) -> np.ndarray:
    """Per-column lambda [F] of X [N, F] by scipy's maximum likelihood (what PowerTransformer fits)."""
    from scipy import stats

    lam = np.empty(X.shape[1])
    for j in range(X.shape[1]):
        col = X[:, j][~np.isnan(X[:, j])]
        if method == "box-cox":
            if col.size == 0 or np.min(col) <= 0:
                raise ValueError(f"Box-Cox needs strictly positive data; column {names[j]!r} "
                                 "is not (after imputation and clipping)")
            if np.all(col == col[0]):
                raise ValueError(f"Box-Cox needs a column that is not constant; column {names[j]!r} is")
            lam[j] = stats.boxcox(col, lmbda=None)[1]
        else:
            var, mean = np.var(col), np.mean(col)
            lam[j] = 1.0 if is_constant_feature(var, mean, col.size) else stats.yeojohnson(col, lmbda=None)[1]
    return lam


def chunk_summary(x: torch.Tensor, *, nonlinear_name: str | None, sketch: bool, backend: str) -> dict:
    """Mergeable statistics of one chunk's numeric block x [N, F]: ``raw`` [6, F] moments,
    ``f`` [6, F] moments of the nonlinear transform of x (None without one) and, when a quantile
    is needed, the sketch of x (as its JSON dict)."""
    F = x.shape[1]
    raw = ops.column_stats(x, backend=backend).cpu().numpy() if F else np.zeros((6, 0))
    f = None
    if nonlinear_name is not None:
        f = ops.column_stats(nonlinear(x, nonlinear_name, np.zeros(F)), backend=backend).cpu().numpy() \
            if F else np.zeros((6, 0))
    out = {"raw": raw, "f": f}
    if sketch:
        out["sketch"] = ops.QuantileSketch(F, k=SKETCH_K).update(x.cpu()).to_dict()
    return out


def merge_summaries(a: dict, b: dict) -> dict:
    out = {"raw": ops.merge_stats(a["raw"], b["raw"]),
           "f": None if a["f"] is None else ops.merge_stats(a["f"], b["f"])}
    if "sketch" in a:
        out["sketch"] = ops.QuantileSketch.from_dict(a["sketch"]).merge(ops.QuantileSketch.from_dict(b["sketch"])).to_dict()
    return out


class ChunkStats:
    """The statistics of one chunk x [N, F] (on its device), exact."""

    def __init__(self, data: torch.Tensor | Callable[[], torch.Tensor], backend: str, moments: np.ndarray | None = None):
        self._data = data  # the block as this step sees it, or a function making it (run once)
        self._moments = moments
        self.backend = backend

    def data(self) -> torch.Tensor:
        if callable(self._data):
            self._data = self._data()
        return self._data

    def moments(self) -> np.ndarray:
        if self._moments is None:
            x = self.data()
            self._moments = ops.column_stats(x, backend=self.backend).cpu().numpy() if x.shape[1] else np.zeros((6, 0))
        return self._moments

    def quantiles(self, q: Sequence[float]) -> np.ndarray:
        return column_quantiles(self.data(), q, self.backend)

    def _then(self, params: np.ndarray) -> torch.Tensor:
        return ops.numeric_transform(self.data(), params, "float64", backend=self.backend)

    def imputed(self, fill: np.ndarray, moments: np.ndarray, active: bool = True, measure: bool = False) -> "ChunkStats":
        """measure: a later step reads the imputed block anyway, so its moments are measured on it
        (the column_stats pass of a direct fit on that block) instead of the closed form."""
        F = fill.shape[0]
        return ChunkStats(lambda: self._then(ops.transform_params(F, fill=fill)), self.backend,
                          None if measure else moments)

    def clipped(self, lo: np.ndarray, hi: np.ndarray) -> "ChunkStats":
        return ChunkStats(lambda: self._then(ops.transform_params(lo.shape[0], lo=lo, hi=hi)), self.backend)

    def transformed(self, name: str, lam: np.ndarray) -> "ChunkStats":
        return ChunkStats(lambda: nonlinear(self.data(), name, lam), self.backend)

    def lambdas(self, method: str, names: Sequence[str]) -> np.ndarray:
        return power_lambdas(self.data().detach().cpu().numpy(), method, names)


@dataclasses.dataclass(frozen=True)
class MergedStats:
    """The statistics of merged chunks (``chunk_summary`` / ``merge_summaries``) of n_rows rows."""

    summary: dict
    n_rows: int
    moments_: np.ndarray | None = None  # moments of the data as this step sees it; None: they do not merge
    f_obs: np.ndarray | None = None  # moments of f(observed values); None once clipped
    fill_copies: tuple | None = None  # (k [F], fill [F]): the imputed copies of each column
    sketch_: object = None  # the QuantileSketch (imputed copies added)
    maps: tuple = ()  # monotone maps applied to the sketch's quantiles (clip, nonlinear)

    @classmethod
    def of(cls, summary: dict, n_rows: int) -> "MergedStats":
        sketch = ops.QuantileSketch.from_dict(summary["sketch"]) if "sketch" in summary else None
        return cls(summary, n_rows, summary["raw"], summary["f"], None, sketch)

    def moments(self) -> np.ndarray:
        if self.moments_ is None:
            raise NotMergeable()
        return self.moments_

    def quantiles(self, q: Sequence[float]) -> np.ndarray:
        # clipping and log1p / sqrt are monotone: the quantiles of the mapped data are the mapped
        # quantiles (up to the interpolation between two order statistics)
        F = self.summary["raw"].shape[1]
        qs = np.asarray(self.sketch_.quantile(list(q)), dtype=np.float64).reshape(len(q), F)
        for m in self.maps:
            qs = m(qs)
        return qs

    def imputed(self, fill: np.ndarray, moments: np.ndarray, active: bool = True, measure: bool = False) -> "MergedStats":
        # measure: the chunks are gone, the closed form is the only one
        if not active:
            return dataclasses.replace(self, moments_=moments)
        k = self.n_rows - self.summary["raw"][0]  # missing values per column
        sketch = self.sketch_
        if sketch is not None and k.max(initial=0) > 0:
            F = fill.shape[0]
            block = np.full((int(k.max()), F), np.nan)
            for j in range(F):
                block[: int(k[j]), j] = fill[j]
            sketch = ops.QuantileSketch.from_dict(sketch.to_dict()).update(block)
        return dataclasses.replace(self, moments_=moments, fill_copies=(k, fill), sketch_=sketch)

    def clipped(self, lo: np.ndarray, hi: np.ndarray) -> "MergedStats":
        return dataclasses.replace(self, moments_=None, f_obs=None, maps=self.maps + (lambda q: np.clip(q, lo, hi),))

    def transformed(self, name: str, lam: np.ndarray) -> "MergedStats":
        f = self.f_obs
        if f is not None and self.fill_copies is not None:  # plus the k imputed copies of f(fill)
            k, fill = self.fill_copies
            f = ops.merge_stats(f, constant_stats(k, nonlinear(fill, name, lam).numpy()))
        return dataclasses.replace(self, moments_=f, f_obs=None,
                                   maps=self.maps + (lambda q: nonlinear(q, name, lam).numpy(),))

    def lambdas(self, method: str, names: Sequence[str]) -> np.ndarray:
        raise NotMergeable()
