"""Category layouts: every per-column decision of a one-hot or ordinal encoder (infrequent
folding, ``drop``, what missing and unknown values become), compiled into a lookup table with
``n_categories + 2`` slots per column, the arguments of ``kernelflow.ops.onehot``'s kernels.

    slot = code            if 0 <= code < n_categories
           n_categories    if code == -1          (missing)
           n_categories+1  otherwise              (unknown)

One-hot (:class:`OneHotLayout`): ``table[slot]`` is the output column within the feature that
gets the 1, ``-1`` for an all-zeros row block (dropped / ignored), ``-2`` for an error (counted per
column by the kernel and raised afterwards).

Ordinal (:class:`OrdinalLayout`): ``table[slot]`` is the float64 value written (NaN allowed),
with per-column bits marking the missing / unknown slot as an error.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Sequence

import numpy as np
import torch

from kernelflow.ops.categories import infrequent_mapping, infrequent_mask

ZEROS = -1  # one-hot table entry: the row block stays all zeros
ERROR = -2  # one-hot table entry: the value raises
ERR_MISSING, ERR_UNKNOWN = 1, 2  # ordinal error bits (feat row 2)


def _is_nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or (isinstance(v, np.floating) and np.isnan(v))


def _counts_list(counts, categories, name):
    if counts is None:
        return None
    if len(counts) != len(categories):
        raise ValueError(f"{name} must have one entry per column ({len(categories)}), got {len(counts)}")
    out = []
    for j, (c, cats) in enumerate(zip(counts, categories)):
        c = np.asarray(c.cpu() if isinstance(c, torch.Tensor) else c, dtype=np.int64)
        if c.shape != (len(cats),):
            raise ValueError(f"{name}[{j}] must have {len(cats)} entries, got shape {c.shape}")
        out.append(c)
    return out


def _as_list(categories) -> list[np.ndarray]:
    if not isinstance(categories, (list, tuple)):
        raise TypeError(f"categories must be a list of per-column arrays, got {type(categories).__name__}")
    out = []
    for j, c in enumerate(categories):
        c = np.asarray(c.cpu() if isinstance(c, torch.Tensor) else c)
        if c.ndim != 1:
            raise ValueError(f"categories[{j}] must be 1-D, got shape {c.shape}")
        out.append(c)
    return out


def _fit_inputs(categories, counts, n_missing) -> tuple[list[np.ndarray], list[np.ndarray] | None, list[int]]:
    """The checked per-column fit inputs of ``from_categories``: (categories, counts or None, n_missing)."""
    cats_l = _as_list(categories)
    F = len(cats_l)
    cnt_l = _counts_list(counts, cats_l, "counts")
    nm = [0] * F if n_missing is None else [int(v) for v in n_missing]
    if len(nm) != F:
        raise ValueError(f"n_missing must have one entry per column ({F}), got {len(nm)}")
    return cats_l, cnt_l, nm


def _grouping(cats, counts, n_missing, min_frequency, max_categories, include_missing):
    """(K, has_missing, infrequent mask or None, mapping or None) for one column; the missing
    category takes part in the counts only when include_missing (OneHotEncoder); the column's
    samples are its counts plus its missing values."""
    K = len(cats)
    n_samples = int((counts.sum() if counts is not None else 0) + n_missing)
    has_m = n_missing > 0
    enabled = min_frequency is not None or (max_categories is not None and max_categories >= 1)
    if not enabled:
        return K, has_m, None, None
    if counts is None:
        raise ValueError("counts are needed when min_frequency or max_categories is set")
    c = np.append(counts, n_missing) if (has_m and include_missing) else counts
    mask = infrequent_mask(c, n_samples, min_frequency, max_categories)
    return K, has_m, (mask if mask.any() else None), infrequent_mapping(mask)


class _Layout:
    """What both layouts share: one entry per input column (``n_categories``) and the kernel
    arguments, built once per device and cached (callers must not modify them)."""

    @property
    def n_features(self) -> int:
        return len(self.n_categories)

    def _on(self, device, build):
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev not in self._device_cache:  # built and copied once per device, reused by every call
            self._device_cache[dev] = tuple(torch.from_numpy(a).to(dev) for a in build())
        return self._device_cache[dev]


@dataclasses.dataclass(frozen=True, eq=False)
class OneHotLayout(_Layout):
    """Where every input column's one-hot block goes and which code lights which output column.

    n_categories[j]   K_j, the number of (non-missing) categories of column j (codes 0..K_j-1)
    widths[j]         output columns of column j (0 when its only category is dropped)
    offsets[j]        first output column of column j (cumulative widths); width = sum(widths)
    table             int32 [sum(K_j + 2)]: per column, per slot (codes, missing, unknown) the
                      output column within the block, ZEROS (-1) or ERROR (-2)
    table_offsets[j]  start of column j's slots in ``table``
    feature_names     output names, scikit-learn's ``get_feature_names_out``: f"{col}_{category}"
                      and f"{col}_infrequent_sklearn"
    infrequent[j]     indices (into categories + [missing]) of column j's infrequent categories, or None
    drop_idx[j]       index after infrequent grouping of the dropped output, or None
    """

    n_categories: tuple[int, ...]
    widths: tuple[int, ...]
    offsets: tuple[int, ...]
    table: np.ndarray
    table_offsets: tuple[int, ...]
    feature_names: tuple[str, ...]
    infrequent: tuple[np.ndarray | None, ...]
    drop_idx: tuple[int | None, ...]
    _device_cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)
    _can_raise: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)

    @property
    def width(self) -> int:
        return int(sum(self.widths))

    @property
    def can_raise(self) -> bool:
        """Whether any value can raise (handle_unknown="error"); when not, no error check (and no
        device synchronisation) follows the kernel."""
        return self._can_raise

    def __post_init__(self):
        F = len(self.n_categories)
        if not (len(self.widths) == len(self.offsets) == len(self.table_offsets) == F):
            raise ValueError("n_categories, widths, offsets and table_offsets must have one entry per column")
        t = np.asarray(self.table)
        if t.dtype != np.int32 or t.ndim != 1:
            raise ValueError("table must be a 1-D int32 array")
        pos = 0
        for j in range(F):
            K, w = self.n_categories[j], self.widths[j]
            if K < 0 or w < 0 or self.offsets[j] != pos or self.table_offsets[j] < 0 or self.table_offsets[j] + K + 2 > t.size:
                raise ValueError(f"column {j}: inconsistent layout (n_categories={K}, width={w}, offset={self.offsets[j]})")
            seg = t[self.table_offsets[j]:self.table_offsets[j] + K + 2]
            if seg.size and (seg.min() < ERROR or seg.max() >= w):
                raise ValueError(f"column {j}: table entries must be in [-2, {w})")
            pos += w
        if len(self.feature_names) != pos:
            raise ValueError(f"feature_names must have {pos} entries, got {len(self.feature_names)}")
        object.__setattr__(self, "_can_raise", bool((t == ERROR).any()))  # a plain bool: no numpy under torch.compile

    @classmethod
    def from_categories(
        cls,
        categories: Sequence,
        counts: Sequence | None = None,
        n_missing: Sequence[int] | None = None,
        *,
        handle_unknown: str = "error",
        drop: str | Sequence | None = None,
        min_frequency: int | float | None = None,
        max_categories: int | None = None,
        feature_names_in: Sequence[str] | None = None,
        missing_label: str = "nan",
    ) -> "OneHotLayout":
        """The layout scikit-learn's ``OneHotEncoder(sparse_output=False, ...)`` fitted on the same
        data would use.

        categories[j]: column j's sorted categories (without the missing value); counts[j]: their
        fit counts (needed for min_frequency / max_categories); n_missing[j]: missing values seen in
        fit. A column with n_missing > 0 gets the missing value as its last category (named
        f"{col}_{missing_label}"; scikit-learn writes "nan" for NaN, "None" for None), which counts
        like any other category for infrequency; missing values in a column that had none in fit
        are unknown. handle_unknown: "error", "ignore" (all zeros), "infrequent_if_exist" (the
        infrequent column if the column has one, else zeros; "warn" maps the same, the caller
        warns). drop: None, "first", "if_binary" or one category value per column (None entries
        keep the column, NaN drops the missing category), applied after infrequent grouping.
        min_frequency: int count or float fraction of the column's samples; max_categories
        includes the infrequent output. feature_names_in default to x0, x1, ...
        """
        cats_l, cnt_l, nm = _fit_inputs(categories, counts, n_missing)
        F = len(cats_l)
        if handle_unknown not in ("error", "ignore", "infrequent_if_exist", "warn"):
            raise ValueError(f"handle_unknown must be 'error', 'ignore', 'infrequent_if_exist' or 'warn', got {handle_unknown!r}")
        if isinstance(drop, str) and drop not in ("first", "if_binary"):
            raise ValueError(f"drop must be None, 'first', 'if_binary' or one value per column, got {drop!r}")
        if drop is not None and not isinstance(drop, str) and len(drop) != F:
            raise ValueError(f"drop must have one entry per column ({F}), got {len(drop)}")
        if max_categories is not None and (not isinstance(max_categories, numbers.Integral) or max_categories < 1):
            raise ValueError(f"max_categories must be an int >= 1, got {max_categories!r}")
        names_in = [f"x{j}" for j in range(F)] if feature_names_in is None else [str(n) for n in feature_names_in]
        if len(names_in) != F:
            raise ValueError(f"feature_names_in must have one entry per column ({F}), got {len(names_in)}")

        widths, offsets, toffs, names, infreq, drops, table = [], [], [], [], [], [], []
        pos = tpos = 0
        for j in range(F):
            cats = cats_l[j]
            K, has_m, mask, mapping = _grouping(cats, None if cnt_l is None else cnt_l[j], nm[j],
                                                min_frequency, max_categories, include_missing=True)
            Kx = K + int(has_m)
            group = np.arange(Kx) if mapping is None else mapping
            n_grouped = Kx if mapping is None else int(mapping.max()) + 1
            # drop index after grouping
            d = None
            if drop == "first":
                d = 0
            elif drop == "if_binary":
                d = 0 if n_grouped == 2 else None
            elif drop is not None:
                dv = drop[j]
                if dv is None:
                    d = None
                else:
                    if _is_nan(dv):
                        idx = K if has_m else None
                    else:
                        hits = np.flatnonzero(cats.astype(object) == dv) if K else np.array([], dtype=np.int64)
                        idx = int(hits[0]) if hits.size else None
                    if idx is None:
                        raise ValueError(f"drop category {dv!r} of column {j} was not found in its categories")
                    if mask is not None and mask[idx]:
                        raise ValueError(f"Unable to drop category {dv!r} from feature {j} because it is infrequent")
                    d = int(group[idx])
            if Kx == 0:
                d = None  # nothing to drop in a column with no categories
            width = n_grouped - (d is not None)

            def out_col(g: int, d=d) -> int:
                if d is None:
                    return g
                return ZEROS if g == d else g - (g > d)

            if handle_unknown == "error":
                unknown = ERROR
            elif handle_unknown == "ignore" or mapping is None:
                unknown = ZEROS
            else:
                unknown = out_col(n_grouped - 1)
            seg = np.empty(K + 2, dtype=np.int32)
            seg[:K] = [out_col(int(g)) for g in group[:K]]
            seg[K] = out_col(int(group[K])) if has_m else unknown
            seg[K + 1] = unknown
            table.append(seg)
            # names: frequent categories in order, then the infrequent group, minus the dropped one
            labels = [str(c) for c in cats] + ([missing_label] if has_m else [])
            if mask is not None:
                labels = [lab for lab, m in zip(labels, mask) if not m] + ["infrequent_sklearn"]
            if d is not None:
                del labels[d]
            names += [f"{names_in[j]}_{lab}" for lab in labels]
            widths.append(width)
            offsets.append(pos)
            toffs.append(tpos)
            infreq.append(None if mask is None else np.flatnonzero(mask))
            drops.append(d)
            pos += width
            tpos += K + 2
        tab = np.concatenate(table).astype(np.int32) if table else np.zeros(0, dtype=np.int32)
        return cls(tuple(len(c) for c in cats_l), tuple(widths), tuple(offsets), tab, tuple(toffs),
                   tuple(names), tuple(infreq), tuple(drops))

    def tensors(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The kernel arguments on ``device`` (built once per device and cached: do not modify them):

        feat   int64 [4, F]: out_offset, width, table_offset, n_categories per column
        table  int32 [T]
        slots  int32 [2, S]: (column, position within its block) of every output column 0..W-1,
               then one check-only slot (position 0) per zero-width column that can raise, so the
               kernels that work per output element still see every column's errors.
        """
        return self._on(device, self._build_tensors)

    def _build_tensors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        F = self.n_features
        feat = np.array([self.offsets, self.widths, self.table_offsets, self.n_categories], dtype=np.int64).reshape(4, F)
        cols, pos = [], []
        for j, w in enumerate(self.widths):
            cols += [j] * w
            pos += list(range(w))
        for j, w in enumerate(self.widths):
            if w == 0:
                t0 = self.table_offsets[j]
                if (self.table[t0:t0 + self.n_categories[j] + 2] == ERROR).any():
                    cols.append(j)
                    pos.append(0)
        slots = np.array([cols, pos], dtype=np.int32).reshape(2, len(cols))
        return feat, np.array(self.table, dtype=np.int32), slots


@dataclasses.dataclass(frozen=True, eq=False)
class OrdinalLayout(_Layout):
    """Per column, the value each code slot becomes (see the module docstring).

    n_categories[j]   K_j; table float64 [sum(K_j + 2)]; table_offsets[j] start of column j's slots;
    errors[j]         bits: ERR_MISSING (1) the missing slot raises, ERR_UNKNOWN (2) the unknown slot raises
    infrequent[j]     indices of column j's infrequent categories (missing excluded), or None
    """

    n_categories: tuple[int, ...]
    table: np.ndarray
    table_offsets: tuple[int, ...]
    errors: tuple[int, ...]
    infrequent: tuple[np.ndarray | None, ...]
    _device_cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def can_raise(self) -> bool:
        """Whether any missing / unknown value raises; when not, no error check follows the kernel."""
        return any(self.errors)

    def __post_init__(self):
        F = len(self.n_categories)
        t = np.asarray(self.table)
        if t.dtype != np.float64 or t.ndim != 1:
            raise ValueError("table must be a 1-D float64 array")
        if len(self.table_offsets) != F or len(self.errors) != F:
            raise ValueError("n_categories, table_offsets and errors must have one entry per column")
        for j in range(F):
            if self.n_categories[j] < 0 or self.table_offsets[j] < 0 or self.table_offsets[j] + self.n_categories[j] + 2 > t.size:
                raise ValueError(f"column {j}: table too short for {self.n_categories[j]} categories")
            if not 0 <= self.errors[j] <= 3:
                raise ValueError(f"errors[{j}] must be in [0, 3]")

    @classmethod
    def from_categories(
        cls,
        categories: Sequence,
        counts: Sequence | None = None,
        n_missing: Sequence[int] | None = None,
        *,
        handle_unknown: str = "error",
        unknown_value: float | None = None,
        encoded_missing_value: float = np.nan,
        min_frequency: int | float | None = None,
        max_categories: int | None = None,
    ) -> "OrdinalLayout":
        """The mapping scikit-learn's ``OrdinalEncoder`` fitted on the same data applies: category i
        -> i (or, with infrequent grouping, frequent categories 0..n_frequent-1 in order and every
        infrequent one n_frequent; the missing value never counts as infrequent), missing ->
        ``encoded_missing_value`` if missing values were seen in fit (else unknown), unknown ->
        ``unknown_value`` when handle_unknown="use_encoded_value", else an error."""
        cats_l, cnt_l, nm = _fit_inputs(categories, counts, n_missing)
        F = len(cats_l)
        if handle_unknown not in ("error", "use_encoded_value"):
            raise ValueError(f"handle_unknown must be 'error' or 'use_encoded_value', got {handle_unknown!r}")
        if handle_unknown == "use_encoded_value" and unknown_value is None:
            raise ValueError("unknown_value must be set when handle_unknown='use_encoded_value'")
        tabs, toffs, errs, infreq = [], [], [], []
        tpos = 0
        for j in range(F):
            cats = cats_l[j]
            K, has_m, mask, mapping = _grouping(cats, None if cnt_l is None else cnt_l[j], nm[j],
                                                min_frequency, max_categories, include_missing=False)
            seg = np.empty(K + 2, dtype=np.float64)
            seg[:K] = np.arange(K) if mapping is None else mapping
            unk = float(unknown_value) if handle_unknown == "use_encoded_value" else 0.0
            seg[K] = float(encoded_missing_value) if has_m else unk
            seg[K + 1] = unk
            e = 0
            if handle_unknown == "error":
                e = ERR_UNKNOWN | (0 if has_m else ERR_MISSING)
            tabs.append(seg)
            toffs.append(tpos)
            errs.append(e)
            infreq.append(None if mask is None else np.flatnonzero(mask))
            tpos += K + 2
        tab = np.concatenate(tabs) if tabs else np.zeros(0, dtype=np.float64)
        return cls(tuple(len(c) for c in cats_l), tab, tuple(toffs), tuple(errs), tuple(infreq))

    def tensors(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """feat int64 [3, F] (table_offset, n_categories, error bits) and table float64 [T] on
        ``device`` (built once per device and cached: do not modify them)."""
        return self._on(device, lambda: (
            np.array([self.table_offsets, self.n_categories, self.errors], dtype=np.int64).reshape(3, self.n_features),
            np.array(self.table, dtype=np.float64)))
