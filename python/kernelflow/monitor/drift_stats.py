"""Mergeable drift statistics and the drift measures, in plain numpy.

This file imports nothing but numpy: ``kernelflow.deploy.write_model_repository`` copies it next
to the Triton encode model (as ``kernelflow_drift_stats.py``), so the served statistics and
``kernelflow.monitor.DriftMonitor`` are computed by the same code.

Numeric columns keep the statistics kernelflow fits with (``kernelflow.ops.column_stats``'s
rows: count of finite values, NaN count, mean, M2, min, max; fp64, merged with Chan's formula)
plus counts in the training distribution's quantile bins; categorical columns keep counts per
category code plus one for unknown values, and the count of missing values.

Measures per column, against a reference profile of the training data:
- psi: population stability index, sum over bins of (q - p) * ln(q / p), proportions clipped
  at ``PSI_EPS`` so an empty bin does not make it infinite (0 = same distribution; > 0.25 is
  the usual "shifted" threshold);
- mean_shift: (served mean - training mean) / training standard deviation (numeric);
- missing_rate: share of served rows with NaN / null in the column;
- unknown_rate: share of served rows whose category was not seen in fit (categorical).
"""

from __future__ import annotations

import math

import numpy as np

STAT_ROWS = ("count", "nan_count", "mean", "m2", "min", "max")
PSI_EPS = 1e-4
REFERENCE_FORMAT = "kernelflow-drift-reference"
REFERENCE_VERSION = 1


def column_stats(x: np.ndarray) -> np.ndarray:
    """x [rows, cols] float -> [6, cols] float64 (STAT_ROWS; fp64 accumulation). min/max are
    +inf/-inf for a column without a finite value, as ``kernelflow.ops.column_stats``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D [rows, cols], got shape {x.shape}")
    fin = np.isfinite(x)
    n = fin.sum(0).astype(np.float64)
    nan = np.isnan(x).sum(0).astype(np.float64)
    z = np.where(fin, x, 0.0)
    mean = np.divide(z.sum(0), n, out=np.zeros_like(n), where=n > 0)
    with np.errstate(over="ignore", invalid="ignore"):  # |x| near 1e154+: M2 overflows to inf, honestly
        d = np.where(fin, x - mean, 0.0)
        m2 = (d * d).sum(0)
    mn = np.where(fin, x, np.inf).min(0) if x.shape[0] else np.full_like(n, np.inf)
    mx = np.where(fin, x, -np.inf).max(0) if x.shape[0] else np.full_like(n, -np.inf)
    return np.stack([n, nan, mean, m2, mn, mx])


def merge_stats(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chan's merge of two [6, cols] blocks: exact counts / min / max, mean and M2 in fp64."""
    n = a[0] + b[0]
    with np.errstate(over="ignore", invalid="ignore"):  # huge values overflow M2 to inf, not to NaN
        delta = np.where((a[0] > 0) & (b[0] > 0), b[2] - a[2], 0.0)  # an empty side adds nothing
        w = np.divide(b[0], n, out=np.zeros_like(n), where=n > 0)
        mean = np.where(a[0] > 0, a[2] + delta * w, b[2])
        m2 = a[3] + b[3] + delta * delta * a[0] * w
    return np.stack([n, a[1] + b[1], mean, m2, np.minimum(a[4], b[4]), np.maximum(a[5], b[5])])


def quantile_edges(col: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges [<= bins - 1] at the finite values' quantiles (duplicates removed)."""
    v = col[np.isfinite(col)]
    if v.size == 0:
        return np.zeros(0)
    return np.unique(np.quantile(v.astype(np.float64), np.arange(1, bins) / bins))


def bin_counts(col: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts [len(edges) + 1] of col's finite values in (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    v = np.asarray(col, dtype=np.float64)
    v = v[np.isfinite(v)]
    return np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1).astype(np.int64)


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index of the count vectors (NaN when either is empty)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"expected and actual need the same bins, got {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        return math.nan
    p = np.clip(e / e.sum(), eps, None)
    q = np.clip(a / a.sum(), eps, None)
    return float(np.sum((q - p) * np.log(q / p)))


def _std(stats_col) -> float:
    n, m2 = float(stats_col[0]), float(stats_col[3])
    return math.sqrt(m2 / n) if n > 0 else math.nan


def mean_shift(ref_stats: np.ndarray, cur_stats: np.ndarray) -> float:
    """(current mean - reference mean) / reference std, for one column's [6] statistics."""
    if cur_stats[0] <= 0 or ref_stats[0] <= 0:
        return math.nan
    d = float(cur_stats[2] - ref_stats[2])
    s = _std(ref_stats)
    if s > 0:
        return d / s
    return 0.0 if d == 0 else math.copysign(math.inf, d)


def check_reference(ref: dict) -> dict:
    """Validate a reference profile (as ``DriftReference.to_dict()`` writes it); raises ValueError."""
    if not isinstance(ref, dict) or ref.get("format") != REFERENCE_FORMAT:
        raise ValueError(f"reference must be a {REFERENCE_FORMAT!r} document")
    if ref.get("version") != REFERENCE_VERSION:
        raise ValueError(f"reference version {ref.get('version')!r} is not supported (expected {REFERENCE_VERSION})")
    for c in ref.get("numeric", []):
        if c.get("stats") is not None:
            if len(c["stats"]) != 6:
                raise ValueError(f"reference of numeric column {c.get('name')!r}: stats must have 6 values")
            if len(c["bin_counts"]) != len(c["edges"]) + 1:
                raise ValueError(f"reference of numeric column {c.get('name')!r}: bin_counts must be edges + 1 long")
    for c in ref.get("categorical", []):
        if len(c["counts"]) != c["n_categories"]:
            raise ValueError(f"reference of categorical column {c.get('name')!r}: one count per category expected")
    return ref


class DriftState:
    """Statistics of the data seen so far, mergeable across chunks and processes.

    numeric: ``names`` with the reference's bin ``edges`` per column (empty edges: no bins);
    categorical: ``n_categories`` per column (codes 0..k-1; a code < 0 counts as unknown).
    """

    def __init__(self, num_names, edges, cat_names, n_categories):
        self.num_names = [str(n) for n in num_names]
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        self.cat_names = [str(n) for n in cat_names]
        self.n_categories = [int(k) for k in n_categories]
        if len(self.edges) != len(self.num_names) or len(self.n_categories) != len(self.cat_names):
            raise ValueError("one bin-edge array per numeric column and one category count per categorical column expected")
        self.rows = 0
        F = len(self.num_names)
        self.stats = np.stack([np.zeros(F), np.zeros(F), np.zeros(F), np.zeros(F), np.full(F, np.inf), np.full(F, -np.inf)])
        self.bins = [np.zeros(len(e) + 1, dtype=np.int64) for e in self.edges]
        self.cat_counts = [np.zeros(k + 1, dtype=np.int64) for k in self.n_categories]  # last: unknown
        self.cat_missing = np.zeros(len(self.cat_names), dtype=np.int64)

    @classmethod
    def for_reference(cls, ref: dict) -> "DriftState":
        return cls([c["name"] for c in ref["numeric"]], [c["edges"] for c in ref["numeric"]],
                   [c["name"] for c in ref["categorical"]], [c["n_categories"] for c in ref["categorical"]])

    def update(self, num: np.ndarray | None, codes: np.ndarray | None, cat_missing: np.ndarray | None) -> "DriftState":
        """Add one batch: num [N, n_numeric] float (NaN = missing), codes [N, n_categorical] int
        (after imputation; < 0 = unknown), cat_missing [N, n_categorical] bool (null before imputation)."""
        F, C = len(self.num_names), len(self.cat_names)
        N = None
        if F:
            num = np.asarray(num)
            if num.ndim != 2 or num.shape[1] != F:
                raise ValueError(f"num must be [N, {F}], got shape {num.shape}")
            N = num.shape[0]
            self.stats = merge_stats(self.stats, column_stats(num))
            for j in range(F):
                self.bins[j] += bin_counts(num[:, j], self.edges[j])
        if C:
            codes = np.asarray(codes)
            if codes.ndim != 2 or codes.shape[1] != C or (N is not None and codes.shape[0] != N):
                raise ValueError(f"codes must be [N, {C}] with the rows of num, got shape {codes.shape}")
            N = codes.shape[0]
            for j, k in enumerate(self.n_categories):
                c = codes[:, j].astype(np.int64)
                c = np.where((c < 0) | (c >= k), k, c)
                self.cat_counts[j] += np.bincount(c, minlength=k + 1)
            if cat_missing is not None:
                self.cat_missing += np.asarray(cat_missing, dtype=bool).sum(0)
        self.rows += int(N or 0)
        return self

    def merge(self, other: "DriftState") -> "DriftState":
        if other.num_names != self.num_names or other.cat_names != self.cat_names or other.n_categories != self.n_categories:
            raise ValueError("cannot merge drift states of different columns")
        self.rows += other.rows
        self.stats = merge_stats(self.stats, other.stats)
        self.bins = [a + b for a, b in zip(self.bins, other.bins)]
        self.cat_counts = [a + b for a, b in zip(self.cat_counts, other.cat_counts)]
        self.cat_missing = self.cat_missing + other.cat_missing
        return self

    def measures(self, ref: dict) -> list[dict]:
        """One dict per column: column, kind, rows, psi, mean_shift, missing_rate, unknown_rate,
        and the reference's missing rate (NaN where the reference lacks what a measure needs)."""
        nan = math.nan
        out = []
        ref_rows = ref.get("rows") or 0
        for j, (name, rc) in enumerate(zip(self.num_names, ref["numeric"])):
            s = self.stats[:, j]
            has = rc.get("stats") is not None
            rs = np.asarray(rc["stats"], dtype=np.float64) if has else None
            out.append(dict(
                column=name, kind="numeric", rows=self.rows,
                psi=psi(rc["bin_counts"], self.bins[j]) if has else nan,
                mean_shift=mean_shift(rs, s) if has else nan,
                missing_rate=float(s[1]) / self.rows if self.rows else nan,
                unknown_rate=nan,
                reference_missing_rate=float(rs[1]) / ref_rows if has and ref_rows else nan,
                mean=float(s[2]) if s[0] else nan, reference_mean=float(rs[2]) if has and rs[0] else nan))
        for j, (name, rc) in enumerate(zip(self.cat_names, ref["categorical"])):
            cc = self.cat_counts[j]
            expected = np.append(np.asarray(rc["counts"], dtype=np.float64), 0.0)  # nothing unknown in fit
            rm = rc.get("missing")
            out.append(dict(
                column=name, kind="categorical", rows=self.rows,
                psi=psi(expected, cc), mean_shift=nan,
                missing_rate=float(self.cat_missing[j]) / self.rows if self.rows else nan,
                unknown_rate=float(cc[-1]) / self.rows if self.rows else nan,
                reference_missing_rate=float(rm) / ref_rows if rm is not None and ref_rows else nan,
                mean=nan, reference_mean=nan))
        return out

    def to_dict(self) -> dict:
        """JSON-able (to merge states of several processes)."""
        return {"rows": self.rows, "num_names": self.num_names, "edges": [e.tolist() for e in self.edges],
                "cat_names": self.cat_names, "n_categories": self.n_categories, "stats": self.stats.tolist(),
                "bins": [b.tolist() for b in self.bins], "cat_counts": [c.tolist() for c in self.cat_counts],
                "cat_missing": self.cat_missing.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "DriftState":
        st = cls(d["num_names"], d["edges"], d["cat_names"], d["n_categories"])
        st.rows = int(d["rows"])
        st.stats = np.asarray(d["stats"], dtype=np.float64).reshape(6, len(st.num_names))
        st.bins = [np.asarray(b, dtype=np.int64) for b in d["bins"]]
        st.cat_counts = [np.asarray(c, dtype=np.int64) for c in d["cat_counts"]]
        st.cat_missing = np.asarray(d["cat_missing"], dtype=np.int64)
        if [b.shape[0] for b in st.bins] != [e.shape[0] + 1 for e in st.edges] or \
                [c.shape[0] for c in st.cat_counts] != [k + 1 for k in st.n_categories]:
            raise ValueError("drift state arrays do not match its columns")
        return st
