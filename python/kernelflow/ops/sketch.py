"""A mergeable per-column quantile sketch for partial_fit, chunked and distributed fits.

Each column keeps a deterministic compactor hierarchy (Manku-Rajagopalan-Lindsay / KLL with
equal capacities): level h holds values of weight 2^h. New values (NaN dropped, +-inf kept) go
to level 0; a level holding at least ``k`` values is sorted and every other value (alternating
offset per level, so the errors of successive compactions cancel on average) moves up one
level, leaving one value behind when the count is odd. ``merge`` concatenates the levels of two
sketches and compacts the same way, so any mix of updates and merges is allowed.

Rank-error bound. A compaction at level h changes the weighted count of values <= x (or < x)
by at most 2^h for every x, and it consumes >= k values of weight 2^h out of a total weight n,
so level h compacts at most n / (k 2^h) times. For n values in a column the absolute rank error
of every query is therefore at most H n / k with H = floor(log2(n / k)) + 1 the number of levels
that can compact (0 for n < k: the sketch is exact): ``eps(n) = H / k``. The sketch also
carries a certified bound, the sum of 2^h over the compactions it actually performed
(``rank_error_bound()``), which is usually far smaller. Exact min and max are kept, so q = 0
and q = 1 are exact. ``quantile`` takes, for rank target t = q (n - 1), the stored values whose weighted rank
intervals hold floor(t) and ceil(t) and interpolates linearly between them as numpy.quantile
does: equal to numpy while the sketch is exact, and otherwise between two values whose true rank
intervals lie within ``rank_error_bound()`` of t. Serialisation is JSON (``to_dict`` / ``from_dict``), never pickle.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

_FORMAT = "kernelflow.QuantileSketch"


def _enc(a: np.ndarray) -> list:
    out = a.tolist()
    if not np.isfinite(a).all():  # JSON has no inf: spell them as strings
        out = [v if math.isfinite(v) else ("inf" if v > 0 else "-inf") for v in out]
    return out


def _dec(v: list) -> np.ndarray:
    return np.array([float(t) for t in v], dtype=np.float64)


class _Column:
    __slots__ = ("levels", "offsets", "n", "err", "lo", "hi")

    def __init__(self) -> None:
        self.levels: list[np.ndarray] = []
        self.offsets: list[int] = []  # compactions done per level (their parity is the next offset)
        self.n = 0
        self.err = 0  # certified absolute rank-error bound
        self.lo, self.hi = math.inf, -math.inf

    def _level(self, h: int) -> None:
        while len(self.levels) <= h:
            self.levels.append(np.empty(0, dtype=np.float64))
            self.offsets.append(0)

    def add(self, h: int, v: np.ndarray) -> None:
        self._level(h)
        self.levels[h] = np.concatenate([self.levels[h], v]) if self.levels[h].size else v

    def compact(self, k: int) -> None:
        h = 0
        while h < len(self.levels):
            buf = self.levels[h]
            if buf.size >= k:
                buf = np.sort(buf)
                m = buf.size - (buf.size & 1)
                off = self.offsets[h] & 1
                self.offsets[h] += 1
                up = buf[off:m:2]
                self.levels[h] = buf[m:].copy()
                self.err += 1 << h
                self.add(h + 1, up)
            h += 1

    def weighted(self) -> tuple[np.ndarray, np.ndarray]:
        vals = [lv for lv in self.levels if lv.size]
        if not vals:
            return np.empty(0), np.empty(0)
        w = np.concatenate([np.full(lv.size, float(1 << h)) for h, lv in enumerate(self.levels) if lv.size])
        v = np.concatenate(vals)
        order = np.argsort(v, kind="stable")
        return v[order], w[order]


class QuantileSketch:
    """Per-column mergeable quantile sketch; see the module docstring for the error bound.

    ``k`` (>= 2) is each level's capacity: memory per column is about k log2(n / k) floats and
    the worst-case rank error is ``eps(n) * n`` with ``eps(n) = (floor(log2(n / k)) + 1) / k``.
    """

    def __init__(self, n_features: int, k: int = 1024) -> None:
        if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 0:
            raise ValueError(f"n_features must be a non-negative int, got {n_features!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise ValueError(f"k must be an int >= 2, got {k!r}")
        self.n_features = int(n_features)
        self.k = int(k)
        self._cols = [_Column() for _ in range(self.n_features)]

    @property
    def n(self) -> np.ndarray:
        """Non-NaN values seen per column, [n_features] int64."""
        return np.array([c.n for c in self._cols], dtype=np.int64)

    def eps(self, n: int | None = None) -> float:
        """A-priori relative rank-error bound for a column of n values (default: the largest n)."""
        n = int(self.n.max(initial=0)) if n is None else int(n)
        if n < self.k:
            return 0.0
        return (math.floor(math.log2(n / self.k)) + 1) / self.k

    def rank_error_bound(self) -> np.ndarray:
        """Certified absolute rank-error bound per column, [n_features] int64 (<= eps(n) n)."""
        return np.array([c.err for c in self._cols], dtype=np.int64)

    def update(self, x: Any) -> "QuantileSketch":
        """Add the rows of x [rows, n_features] (numpy or torch, any float dtype); NaN ignored."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"x must have shape [rows, {self.n_features}], got {x.shape}")
        if x.shape[0] == 0:
            return self
        xt = np.ascontiguousarray(x.T)
        for j, c in enumerate(self._cols):
            v = xt[j][~np.isnan(xt[j])]
            if v.size == 0:
                continue
            c.n += int(v.size)
            c.lo, c.hi = min(c.lo, float(v.min())), max(c.hi, float(v.max()))
            c.add(0, v.copy())
            c.compact(self.k)
        return self

    def merge(self, other: "QuantileSketch") -> "QuantileSketch":
        """Fold ``other`` (same n_features and k) into this sketch; returns self."""
        if not isinstance(other, QuantileSketch):
            raise TypeError(f"other must be a QuantileSketch, got {type(other).__name__}")
        if other.n_features != self.n_features or other.k != self.k:
            raise ValueError(f"cannot merge sketches with (n_features, k) = {(other.n_features, other.k)} "
                             f"into {(self.n_features, self.k)}")
        for c, o in zip(self._cols, other._cols):
            if o.n == 0:
                continue
            c.n += o.n
            c.err += o.err
            c.lo, c.hi = min(c.lo, o.lo), max(c.hi, o.hi)
            for h, lv in enumerate(o.levels):
                if lv.size:
                    c.add(h, lv.copy())
            c.compact(self.k)
        return self

    def quantile(self, q: Any) -> np.ndarray:
        """Approximate quantiles [len(q), n_features] float64 (NaN for a column with no value)."""
        qa = np.atleast_1d(np.asarray(q, dtype=np.float64))
        if qa.ndim != 1:
            raise ValueError(f"q must be a float or 1-D, got shape {qa.shape}")
        if np.isnan(qa).any() or (qa < 0).any() or (qa > 1).any():
            raise ValueError(f"q values must lie in [0, 1], got {qa.tolist()}")
        out = np.full((qa.size, self.n_features), np.nan)
        for j, c in enumerate(self._cols):
            if c.n == 0:
                continue
            v, w = c.weighted()
            cum = np.cumsum(w)
            t = qa * (c.n - 1)
            # the values holding ranks floor(t) and ceil(t), linearly interpolated as
            # numpy.quantile does (so the sketch equals numpy exactly while it has not compacted)
            lo_i = np.minimum(np.searchsorted(cum, np.floor(t), side="right"), v.size - 1)
            hi_i = np.minimum(np.searchsorted(cum, np.ceil(t), side="right"), v.size - 1)
            a, b, g = v[lo_i], v[hi_i], t - np.floor(t)
            with np.errstate(invalid="ignore"):
                lerp = np.where(g >= 0.5, b - (b - a) * (1 - g), a + (b - a) * g)
            out[:, j] = np.where(a == b, a, lerp)
            out[qa == 0, j] = c.lo
            out[qa == 1, j] = c.hi
        return out

    def to_dict(self) -> dict:
        """JSON-serialisable state (non-finite values spelled "inf" / "-inf")."""
        cols = []
        for c in self._cols:
            cols.append({"n": c.n, "err": c.err, "min": _enc(np.array([c.lo]))[0], "max": _enc(np.array([c.hi]))[0],
                         "offsets": list(c.offsets), "levels": [_enc(lv) for lv in c.levels]})
        return {"format": _FORMAT, "version": 1, "n_features": self.n_features, "k": self.k, "columns": cols}

    @classmethod
    def from_dict(cls, d: dict) -> "QuantileSketch":
        if not isinstance(d, dict) or d.get("format") != _FORMAT or d.get("version") != 1:
            raise ValueError("not a kernelflow.QuantileSketch version 1 dict")
        s = cls(int(d["n_features"]), int(d["k"]))
        if len(d["columns"]) != s.n_features:
            raise ValueError("columns does not match n_features")
        for c, e in zip(s._cols, d["columns"]):
            c.n, c.err = int(e["n"]), int(e["err"])
            c.lo, c.hi = float(e["min"]), float(e["max"])
            c.offsets = [int(o) for o in e["offsets"]]
            c.levels = [_dec(lv) for lv in e["levels"]]
            if len(c.offsets) != len(c.levels):
                raise ValueError("offsets and levels differ in length")
        return s
