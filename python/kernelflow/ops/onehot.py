"""One-hot and ordinal encoding of int32 category codes (see ``kernelflow.ops.categories`` for the
code convention: >= 0 category index, -1 missing, <= -2 or >= n_categories unknown).

Every per-column decision (infrequent folding, ``drop``, what missing and unknown values become)
is compiled into a lookup table with ``n_categories + 2`` slots per column:

    slot = code            if 0 <= code < n_categories
           n_categories    if code == -1          (missing)
           n_categories+1  otherwise              (unknown)

One-hot (:class:`OneHotLayout`): ``table[slot]`` is the output column within the feature that
gets the 1, ``-1`` for an all-zeros row block (dropped / ignored), ``-2`` for an error (counted per
column by the kernel and raised afterwards as ValueError naming the column). The dense output
[N, W] (float32 / float64 / float16 / bfloat16) is written in one pass (the CUDA and Triton
kernels store every element exactly once; the C++ kernel zeroes a row and sets its ones while the
row is in L1), and may be a column slice of a wider matrix (any row stride, unit column stride).

Ordinal (:class:`OrdinalLayout`): ``table[slot]`` is the float64 value written (NaN allowed),
with per-column bits marking the missing / unknown slot as an error; output float or int64
(embedding indices).

Typical use (what an encoder's fit / transform does)::

    fits = [encode_strings(X[:, j]) for j in range(F)]                    # host strings -> codes
    layout = OneHotLayout.from_categories([f.categories for f in fits], [f.counts for f in fits],
                                          [f.n_missing for f in fits], handle_unknown="ignore",
                                          min_frequency=5, drop="if_binary")
    codes = torch.from_numpy(np.stack([encode_strings(Xt[:, j], fits[j].categories).codes
                                       for j in range(F)], 1)).to(device)
    Y = one_hot(codes, layout)             # [N, layout.width]; names: layout.feature_names

Integer columns stay on the device: ``integer_categories`` at fit, ``map_codes`` at transform.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Sequence

import numpy as np
import torch

from kernelflow._array import check_out, mat, overlaps
from kernelflow.ops._registry import kernel_op
from kernelflow.ops.categories import infrequent_mapping, infrequent_mask

ZEROS = -1  # one-hot table entry: the row block stays all zeros
ERROR = -2  # one-hot table entry: the value raises
ERR_MISSING, ERR_UNKNOWN = 1, 2  # ordinal error bits (feat row 2)
_ONEHOT_OUT = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_ORDINAL_OUT = _ONEHOT_OUT + (torch.int64,)
_OUT_NAMES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
              "bfloat16": torch.bfloat16, "int64": torch.int64}


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


def _grouping(cats, counts, n_missing, n_samples, min_frequency, max_categories, include_missing):
    """(K, has_missing, infrequent mask or None, mapping or None) for one column; the missing
    category takes part in the counts only when include_missing (OneHotEncoder) ."""
    K = len(cats)
    has_m = n_missing > 0
    enabled = min_frequency is not None or (max_categories is not None and max_categories >= 1)
    if not enabled:
        return K, has_m, None, None
    if counts is None:
        raise ValueError("counts are needed when min_frequency or max_categories is set")
    c = np.append(counts, n_missing) if (has_m and include_missing) else counts
    mask = infrequent_mask(c, n_samples, min_frequency, max_categories)
    return K, has_m, (mask if mask.any() else None), infrequent_mapping(mask)


@dataclasses.dataclass(frozen=True, eq=False)
class OneHotLayout:
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
    def n_features(self) -> int:
        return len(self.n_categories)

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
        cats_l = _as_list(categories)
        F = len(cats_l)
        cnt_l = _counts_list(counts, cats_l, "counts")
        nm = [0] * F if n_missing is None else [int(v) for v in n_missing]
        if len(nm) != F:
            raise ValueError(f"n_missing must have one entry per column ({F}), got {len(nm)}")
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
            n_samples = int((cnt_l[j].sum() if cnt_l is not None else 0) + nm[j])
            K, has_m, mask, mapping = _grouping(cats, None if cnt_l is None else cnt_l[j], nm[j], n_samples,
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
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev in self._device_cache:  # built and copied once per device, reused by every call
            return self._device_cache[dev]
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
        res = (torch.from_numpy(feat).to(dev), torch.from_numpy(np.array(self.table, dtype=np.int32)).to(dev),
               torch.from_numpy(slots).to(dev))
        self._device_cache[dev] = res
        return res


@dataclasses.dataclass(frozen=True, eq=False)
class OrdinalLayout:
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
    def n_features(self) -> int:
        return len(self.n_categories)

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
        cats_l = _as_list(categories)
        F = len(cats_l)
        cnt_l = _counts_list(counts, cats_l, "counts")
        nm = [0] * F if n_missing is None else [int(v) for v in n_missing]
        if len(nm) != F:
            raise ValueError(f"n_missing must have one entry per column ({F}), got {len(nm)}")
        if handle_unknown not in ("error", "use_encoded_value"):
            raise ValueError(f"handle_unknown must be 'error' or 'use_encoded_value', got {handle_unknown!r}")
        if handle_unknown == "use_encoded_value" and unknown_value is None:
            raise ValueError("unknown_value must be set when handle_unknown='use_encoded_value'")
        tabs, toffs, errs, infreq = [], [], [], []
        tpos = 0
        for j in range(F):
            cats = cats_l[j]
            n_samples = int((cnt_l[j].sum() if cnt_l is not None else 0) + nm[j])
            K, has_m, mask, mapping = _grouping(cats, None if cnt_l is None else cnt_l[j], nm[j], n_samples,
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
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev not in self._device_cache:
            feat = np.array([self.table_offsets, self.n_categories, self.errors], dtype=np.int64).reshape(3, self.n_features)
            self._device_cache[dev] = (torch.from_numpy(feat).to(dev),
                                       torch.from_numpy(np.array(self.table, dtype=np.float64)).to(dev))
        return self._device_cache[dev]


# ----------------------------------------------------------------------------------------------
# references


def _slots(codes: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """codes [N, F] -> slot index [N, F] int64 (see the module docstring)."""
    c = codes.to(torch.int64)
    K = K.to(torch.int64).unsqueeze(0)
    return torch.where((c >= 0) & (c < K), c, torch.where(c == -1, K, K + 1))


def one_hot_reference(codes: torch.Tensor, feat: torch.Tensor, table: torch.Tensor, out_dtype: torch.dtype,
                      width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch one-hot: (out [N, width] of out_dtype, errors int32 [F] = raising values per column)."""
    N, F = codes.shape
    off, wid, toff, K = (feat[i].to(torch.int64) for i in range(4))
    o = table.to(torch.int64)[toff.unsqueeze(0) + _slots(codes, K)] if F else codes.new_zeros((N, 0), dtype=torch.int64)
    errors = (o == ERROR).sum(0).to(torch.int32)
    out = torch.zeros((N, width), dtype=torch.float64, device=codes.device)
    hit = o >= 0
    rows = torch.arange(N, device=codes.device).unsqueeze(1).expand(N, F)
    out[rows[hit], (off.unsqueeze(0) + o)[hit]] = 1.0
    return out.to(out_dtype), errors


def ordinal_encode_reference(codes: torch.Tensor, feat: torch.Tensor, table: torch.Tensor,
                             out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch ordinal encoding: (out [N, F] of out_dtype, errors int32 [F])."""
    N, F = codes.shape
    toff, K, ebits = (feat[i].to(torch.int64) for i in range(3))
    s = _slots(codes, K)
    v = table.to(torch.float64)[toff.unsqueeze(0) + s] if F else torch.zeros((N, 0), dtype=torch.float64, device=codes.device)
    err = ((s == K.unsqueeze(0)) & ((ebits & ERR_MISSING) != 0).unsqueeze(0)) | \
          ((s == K.unsqueeze(0) + 1) & ((ebits & ERR_UNKNOWN) != 0).unsqueeze(0))
    errors = err.sum(0).to(torch.int32)
    v = torch.where(err, torch.zeros_like(v), v)  # raising values are written as 0 (the call raises anyway)
    return v.to(out_dtype), errors


# ----------------------------------------------------------------------------------------------
# custom ops


@kernel_op("kernelflow::one_hot", mutates_args=("out",), triton="kernelflow.triton.onehot")
def _one_hot_op(codes: torch.Tensor, feat: torch.Tensor, table: torch.Tensor, slots: torch.Tensor,
                out: torch.Tensor, backend: str) -> torch.Tensor:
    """codes [N, F] int32, feat int64 [4, F], table int32 [T], slots int32 [2, S] (OneHotLayout.tensors):
    writes out [N, W] (a view; unit column stride) and returns errors int32 [F]."""


@_one_hot_op.kernel("torch")
def _(k, codes, feat, table, slots, out):
    res, errors = one_hot_reference(codes, feat, table, out.dtype, out.shape[1])
    out.copy_(res)
    return errors


def _errors(codes: torch.Tensor) -> torch.Tensor:
    return torch.zeros(codes.shape[1], dtype=torch.int32, device=codes.device)  # [F] raising values per column


@_one_hot_op.kernel("triton")
def _(k, codes, feat, table, slots, out):
    errors = _errors(codes)
    k.triton.one_hot(codes, feat, table, slots, out, errors)
    return errors


def _one_hot_args(codes, feat, table, slots, out, errors) -> tuple:
    feat_c, table_c, slots_c = feat.contiguous(), table.contiguous(), slots.contiguous()
    return (mat(codes), feat_c.data_ptr(), table_c.data_ptr(), table_c.numel(), slots_c.data_ptr(), slots_c.shape[1],
            mat(out), errors.data_ptr())


@_one_hot_op.kernel("cpu")
def _(k, codes, *args):
    errors = _errors(codes)
    k.C.one_hot_cpu(*_one_hot_args(codes, *args, errors))
    return errors


@_one_hot_op.kernel("cuda")
def _(k, codes, *args):
    errors = _errors(codes)
    k.C.one_hot_cuda(*_one_hot_args(codes, *args, errors), k.stream)
    return errors


@_one_hot_op.register_fake
def _(codes, feat, table, slots, out, backend):
    return codes.new_empty((codes.shape[1],), dtype=torch.int32)


@kernel_op("kernelflow::ordinal_encode", mutates_args=("out",), triton="kernelflow.triton.onehot")
def _ordinal_op(codes: torch.Tensor, feat: torch.Tensor, table: torch.Tensor, out: torch.Tensor,
                backend: str) -> torch.Tensor:
    """codes [N, F] int32, feat int64 [3, F], table float64 [T] (OrdinalLayout.tensors): writes out [N, F]
    (a view; unit column stride) and returns errors int32 [F]."""


@_ordinal_op.kernel("torch")
def _(k, codes, feat, table, out):
    res, errors = ordinal_encode_reference(codes, feat, table, out.dtype)
    out.copy_(res)
    return errors


@_ordinal_op.kernel("triton")
def _(k, codes, feat, table, out):
    errors = _errors(codes)
    k.triton.ordinal_encode(codes, feat, table, out, errors)
    return errors


def _ordinal_args(codes, feat, table, out, errors) -> tuple:
    feat_c, table_c = feat.contiguous(), table.to(torch.float64).contiguous()
    return mat(codes), feat_c.data_ptr(), table_c.data_ptr(), table_c.numel(), mat(out), errors.data_ptr()


@_ordinal_op.kernel("cpu")
def _(k, codes, *args):
    errors = _errors(codes)
    k.C.ordinal_encode_cpu(*_ordinal_args(codes, *args, errors))
    return errors


@_ordinal_op.kernel("cuda")
def _(k, codes, *args):
    errors = _errors(codes)
    k.C.ordinal_encode_cuda(*_ordinal_args(codes, *args, errors), k.stream)
    return errors


@_ordinal_op.register_fake
def _(codes, feat, table, out, backend):
    return codes.new_empty((codes.shape[1],), dtype=torch.int32)


# ----------------------------------------------------------------------------------------------
# public wrappers


def _check_codes(codes: Any, F: int) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dim() == 1:
        codes = codes.unsqueeze(1)
    if codes.dim() != 2:
        raise ValueError(f"codes must be 2-D [N, F], got shape {tuple(codes.shape)}")
    if codes.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64):
        raise TypeError(f"codes must have a signed integer dtype (int32 preferred), got {codes.dtype}")
    if codes.dtype != torch.int32:
        codes = codes.clamp(-2, 2**31 - 1).to(torch.int32)  # beyond int32 is unknown either way
    if codes.shape[1] != F:
        raise ValueError(f"codes has {codes.shape[1]} columns but the layout describes {F}")
    return codes


def _check_out(out, shape, dtypes, device, codes, arg="out"):
    # one contract for every caller-provided output (kernelflow._array.check_out): no stride-0 or
    # overlapping rows, unit column stride, and no overlap with the codes being read
    check_out(out, shape, device, dtypes, arg)
    if overlaps(out, codes):
        raise ValueError(f"{arg} overlaps codes: the kernel would read what it has written")


def _raise_errors(errors: torch.Tensor, what: str, names: Sequence[str] | None = None) -> None:
    if errors.numel() == 0:
        return
    e = errors.cpu()
    bad = torch.nonzero(e).flatten().tolist()
    if bad:
        j = bad[0]
        col = f"column {j}" if names is None else f"column {j} ({names[j]!r})"
        raise ValueError(f"Found {int(e[j])} {what} in {col} during transform"
                         + (f" (also in columns {bad[1:]})" if len(bad) > 1 else ""))


def _dtype(d, allowed, arg):
    dt = _OUT_NAMES.get(d, d) if isinstance(d, str) else d
    if dt not in allowed:
        raise ValueError(f"{arg} must be one of {[str(a).replace('torch.', '') for a in allowed]}, got {d!r}")
    return dt


def one_hot(codes: torch.Tensor, layout: OneHotLayout, out_dtype="float32", out: torch.Tensor | None = None,
            backend: str | None = None, feature_names_in: Sequence[str] | None = None) -> torch.Tensor:
    """Dense one-hot encoding of codes [N, F] (int32 preferred, any strides, any device) into
    [N, layout.width], every element written once. ``out``: an existing [N, width] tensor of a
    float dtype (e.g. a column slice of a wider matrix) to write into; otherwise a new tensor of
    ``out_dtype``. Raises ValueError naming the first column with a value whose table entry is
    ERROR (an unknown category under handle_unknown="error")."""
    if not isinstance(layout, OneHotLayout):
        raise TypeError(f"layout must be a OneHotLayout, got {type(layout).__name__}")
    codes = _check_codes(codes, layout.n_features)
    shape = (codes.shape[0], layout.width)
    if out is None:
        out = torch.empty(shape, dtype=_dtype(out_dtype, _ONEHOT_OUT, "out_dtype"), device=codes.device)
    else:
        _check_out(out, shape, _ONEHOT_OUT, codes.device, codes)
    feat, table, slots = layout.tensors(codes.device)
    errors = _one_hot_op(codes, feat, table, slots, out, _one_hot_op.resolve(backend, codes.device))
    if layout.can_raise:  # reading the counters waits for the device
        _raise_errors(errors, "unknown categories", feature_names_in)
    return out


def ordinal_encode(codes: torch.Tensor, layout: OrdinalLayout, out_dtype="float64", out: torch.Tensor | None = None,
                   backend: str | None = None, feature_names_in: Sequence[str] | None = None) -> torch.Tensor:
    """Ordinal encoding of codes [N, F] into [N, F] values from ``layout`` (float32 / float64 /
    float16 / bfloat16, or int64 for embedding indices, which needs finite integral table values).
    ``out``: an existing [N, F] tensor to write into. Raises ValueError naming the first column with
    a missing / unknown value that the layout marks as an error."""
    if not isinstance(layout, OrdinalLayout):
        raise TypeError(f"layout must be an OrdinalLayout, got {type(layout).__name__}")
    codes = _check_codes(codes, layout.n_features)
    shape = (codes.shape[0], layout.n_features)
    if out is None:
        out = torch.empty(shape, dtype=_dtype(out_dtype, _ORDINAL_OUT, "out_dtype"), device=codes.device)
    else:
        _check_out(out, shape, _ORDINAL_OUT, codes.device, codes)
    if out.dtype == torch.int64:
        t = np.asarray(layout.table)
        if not (np.isfinite(t).all() and (t == np.round(t)).all()):
            raise ValueError("int64 output needs finite integral values for every category, missing and unknown value")
    feat, table = layout.tensors(codes.device)
    errors = _ordinal_op(codes, feat, table, out, _ordinal_op.resolve(backend, codes.device))
    if layout.can_raise:  # reading the counters waits for the device
        _raise_errors(errors, "unknown categories or missing values", feature_names_in)
    return out
