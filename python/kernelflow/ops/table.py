"""The fused whole-table transform: one kernel writes the model's input matrix [N, W] from the
numeric block (impute -> clip -> log1p / sqrt -> scale), missing indicators, and one-hot or
ordinal blocks of category codes. ``TableSpec`` is the layout (see csrc/cpu/table.h);
``kernelflow.Preprocessor`` builds it from its fitted plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from kernelflow import _ext
from kernelflow._array import check_out, mat, out_dtype as _out_dtype, overlaps
from kernelflow.ops._registry import kernel_op

FN_CODES = {None: 0, "log1p": 1, "sqrt": 2, "yeo-johnson": 3, "box-cox": 4}
_I64 = ("num_out", "ind_src", "ind_out", "cat_off", "cat_width", "cat_mode", "cat_toff", "cat_tab", "cat_k", "cat_unk")
_I32 = ("col_kind", "col_src", "col_slot")


@dataclasses.dataclass
class TableSpec:
    """Layout of the fused transform (all tensors on one device).

    params [8, Fn] float64: fill, lo, hi, shift, inv_scale, offset, fn (0 identity, 1 log1p, 2 sqrt,
    3 Yeo-Johnson, 4 Box-Cox), lambda (of the power transforms);
    num_out [Fn]: output column of each numeric column; ind_src / ind_out [Fi]: indicators;
    cat_off / cat_width / cat_mode (0 one-hot, 1 ordinal) / cat_toff / cat_k / cat_unk [Fc] and
    cat_tab [sum K] (code -> one-hot slot) / cat_unk_value [Fc]: categorical blocks; col_kind /
    col_src / col_slot [W] int32: per output column (kind 0 numeric, 1 indicator, 2 one-hot,
    3 ordinal), derived by ``build``.
    """

    W: int
    params: torch.Tensor
    num_out: torch.Tensor
    ind_src: torch.Tensor
    ind_out: torch.Tensor
    cat_off: torch.Tensor
    cat_width: torch.Tensor
    cat_mode: torch.Tensor
    cat_toff: torch.Tensor
    cat_tab: torch.Tensor
    cat_k: torch.Tensor
    cat_unk: torch.Tensor
    cat_unk_value: torch.Tensor
    col_kind: torch.Tensor
    col_src: torch.Tensor
    col_slot: torch.Tensor

    @classmethod
    def build(cls, W: int, params: np.ndarray, num_out, ind_src=(), ind_out=(), cats=()) -> "TableSpec":
        """cats: per categorical column a dict(off, width, mode ("onehot" | "ordinal"), slots
        [K] int (code -> slot, -1 no column), unknown_slot (-1: zeros), unknown_value)."""
        params = np.asarray(params, dtype=np.float64)
        Fn = params.shape[1] if params.ndim == 2 else 0
        if params.shape == (7, Fn):  # no power transform: lambda row of zeros
            params = np.vstack([params, np.zeros((1, Fn))])
        if params.shape != (8, Fn):
            raise ValueError(f"params must have shape (8, Fn) (or (7, Fn) without lambda), got {params.shape}")
        kind = np.full(W, -1, dtype=np.int32)
        src = np.zeros(W, dtype=np.int32)
        slot = np.full(W, -1, dtype=np.int32)

        def claim(col, k, s, sl=-1):
            if not 0 <= col < W:
                raise ValueError(f"output column {col} is outside [0, {W})")
            if kind[col] != -1:
                raise ValueError(f"output column {col} is written twice")
            kind[col], src[col], slot[col] = k, s, sl

        num_out = np.asarray(num_out, dtype=np.int64).reshape(-1)
        if num_out.shape != (Fn,):
            raise ValueError(f"num_out must have {Fn} entries")
        for j, c in enumerate(num_out):
            claim(int(c), 0, j)
        ind_src, ind_out = np.asarray(ind_src, dtype=np.int64).reshape(-1), np.asarray(ind_out, dtype=np.int64).reshape(-1)
        if ind_src.shape != ind_out.shape or np.any((ind_src < 0) | (ind_src >= max(Fn, 1))):
            raise ValueError("ind_src / ind_out must pair indicator columns with numeric columns")
        for i, c in enumerate(ind_out):
            claim(int(c), 1, i)
        offs, widths, modes, toffs, ks, unks, unkv, tab = [], [], [], [], [], [], [], []
        for c, d in enumerate(cats):
            slots = np.asarray(d["slots"], dtype=np.int64).reshape(-1)
            mode = {"onehot": 0, "ordinal": 1}[d["mode"]]
            width = 1 if mode == 1 else int(d["width"])
            if mode == 0 and np.any(slots >= width):
                raise ValueError(f"categorical column {c}: slot beyond its width {width}")
            off = int(d["off"])
            if mode == 1:
                claim(off, 3, c)
            else:
                for s_ in range(width):
                    claim(off + s_, 2, c, s_)
            offs.append(off); widths.append(width); modes.append(mode); toffs.append(len(tab))
            ks.append(len(slots)); unks.append(int(d.get("unknown_slot", -1)))
            unkv.append(float(d.get("unknown_value", np.nan))); tab.extend(slots.tolist())
        if np.any(kind == -1):
            raise ValueError(f"output columns {np.flatnonzero(kind == -1)[:10].tolist()} are written by nothing")
        i64 = lambda v: torch.as_tensor(np.asarray(v, dtype=np.int64).reshape(-1))  # noqa: E731
        return cls(W, torch.from_numpy(params.copy()), i64(num_out), i64(ind_src), i64(ind_out), i64(offs), i64(widths),
                   i64(modes), i64(toffs), i64(tab if tab else [0]), i64(ks), i64(unks),
                   torch.as_tensor(np.asarray(unkv, dtype=np.float64)), torch.from_numpy(kind), torch.from_numpy(src),
                   torch.from_numpy(slot))

    @property
    def Fn(self) -> int:
        return self.params.shape[1]

    @property
    def Fi(self) -> int:
        return self.ind_src.shape[0]

    @property
    def Fc(self) -> int:
        return self.cat_off.shape[0]

    def to(self, device) -> "TableSpec":
        return dataclasses.replace(self, **{f.name: getattr(self, f.name).to(device)
                                            for f in dataclasses.fields(self) if f.name != "W"})

    def tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "W"]

    def pointers(self) -> tuple:
        t = [self.params, *(getattr(self, n) for n in _I64), self.cat_unk_value, *(getattr(self, n) for n in _I32)]
        return (self.Fn, self.Fi, self.Fc, self.W, *(x.data_ptr() for x in t))

    def validate(self) -> "TableSpec":
        """Check every field against the layout contract (dtypes, shapes, one device, every index
        inside the array it indexes, each output column written exactly once and described by
        col_kind / col_src / col_slot). Kernels index with these values unchecked, so a spec is
        validated here, once per content (cached on the tensors' identities and versions)."""
        key = (self.W, *((id(t), t._version) if isinstance(t, torch.Tensor) else None for t in self.tensors()))
        if getattr(self, "_valid_key", None) == key:
            return self
        _validate_spec(self)
        object.__setattr__(self, "_valid_key", key)
        return self

    @classmethod
    def from_tensors(cls, W: int, ts) -> "TableSpec":
        names = [f.name for f in dataclasses.fields(cls) if f.name != "W"]
        return cls(W, **dict(zip(names, ts)))


def _validate_spec(s: TableSpec) -> None:
    def bad(msg):
        raise ValueError(f"TableSpec: {msg}")

    if not isinstance(s.W, int) or isinstance(s.W, bool) or s.W < 0:
        bad(f"W must be a non-negative int, got {s.W!r}")
    dev = None
    for f in dataclasses.fields(s):
        if f.name == "W":
            continue
        t = getattr(s, f.name)
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"TableSpec.{f.name} must be a torch.Tensor, got {type(t).__name__}")
        want = torch.float64 if f.name in ("params", "cat_unk_value") else torch.int32 if f.name in _I32 else torch.int64
        if t.dtype != want:
            raise TypeError(f"TableSpec.{f.name} must be {want}, got {t.dtype}")
        if t.dim() != (2 if f.name == "params" else 1):
            bad(f"{f.name} must be {'2' if f.name == 'params' else '1'}-D, got shape {tuple(t.shape)}")
        if not t.is_contiguous():
            bad(f"{f.name} must be contiguous")
        dev = t.device if dev is None else dev
        if t.device != dev:
            bad(f"{f.name} is on {t.device}, other fields on {dev}")
    a = {f.name: getattr(s, f.name).detach().cpu().numpy() for f in dataclasses.fields(s) if f.name != "W"}
    W = s.W
    if a["params"].shape[0] != 8:
        bad(f"params must have shape (8, Fn), got {a['params'].shape}")
    Fn, Fi, Fc = a["params"].shape[1], a["ind_src"].shape[0], a["cat_off"].shape[0]
    for n, m in (("num_out", Fn), ("ind_out", Fi), *((n, Fc) for n in ("cat_width", "cat_mode", "cat_toff", "cat_k",
                                                                        "cat_unk", "cat_unk_value")),
                 *((n, W) for n in _I32)):
        if a[n].shape != (m,):
            bad(f"{n} must have {m} entries, got shape {a[n].shape}")
    fn = a["params"][6]
    if not np.all(np.isin(fn, list(FN_CODES.values()))):
        bad(f"params[6] (fn) must hold codes {sorted(FN_CODES.values())}")
    if np.any((a["ind_src"] < 0) | (a["ind_src"] >= Fn)):
        bad(f"ind_src must index the {Fn} numeric columns")
    mode, width, off, k, toff, unk = a["cat_mode"], a["cat_width"], a["cat_off"], a["cat_k"], a["cat_toff"], a["cat_unk"]
    T = a["cat_tab"].shape[0]
    if np.any((mode != 0) & (mode != 1)):
        bad("cat_mode must be 0 (one-hot) or 1 (ordinal)")
    if np.any(width < 0) or np.any((mode == 1) & (width != 1)):
        bad("cat_width must be >= 0 (1 for ordinal columns)")
    if np.any(k < 0) or np.any(k >= 2**31) or np.any(toff < 0) or np.any(toff + k > T):
        bad(f"cat_toff / cat_k must select ranges inside cat_tab ({T} entries)")
    if np.any((unk < -1) | ((unk >= width) & (mode == 0))):
        bad("cat_unk must be -1 or a slot below the column's width")
    if np.any(off < 0) or np.any(off + width > W):
        bad(f"categorical blocks must lie inside [0, {W})")
    # each output column written exactly once, by what col_kind / col_src / col_slot say
    kind, src, slot = np.full(W, -1, np.int64), np.zeros(W, np.int64), np.full(W, -1, np.int64)
    written = np.zeros(W, np.int64)

    def claim(cols, kd, sr, sl):
        if cols.size and (cols.min() < 0 or cols.max() >= W):
            bad(f"output columns must lie inside [0, {W})")
        np.add.at(written, cols, 1)
        kind[cols], src[cols], slot[cols] = kd, sr, sl

    claim(a["num_out"], 0, np.arange(Fn), -1)
    claim(a["ind_out"], 1, np.arange(Fi), -1)
    for c in range(Fc):
        tab = a["cat_tab"][toff[c]:toff[c] + k[c]]
        if mode[c] == 0 and tab.size and (tab.min() < -1 or tab.max() >= width[c]):
            bad(f"cat_tab of categorical column {c} must hold slots in [-1, {width[c]})")
        cols = off[c] + np.arange(width[c]) if mode[c] == 0 else off[c:c + 1]
        claim(cols, 2 if mode[c] == 0 else 3, c, np.arange(width[c]) if mode[c] == 0 else -1)
    if np.any(written != 1):
        bad(f"output columns {np.flatnonzero(written != 1)[:10].tolist()} are not written exactly once")
    if not (np.array_equal(kind, a["col_kind"]) and np.array_equal(src, a["col_src"])
            and np.array_equal(slot, a["col_slot"])):
        bad("col_kind / col_src / col_slot do not describe the layout (build the spec with TableSpec.build)")


def nonlinear_reference(v: torch.Tensor, fn: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """log1p / sqrt / Yeo-Johnson / Box-Cox per column, as scipy.stats.yeojohnson and
    scipy.special.boxcox compute them (eps = np.spacing(1.0)). v [N, F]; fn, lam [F]. Pure torch
    (vectorised over columns, usable under torch.compile)."""
    eps = 2.220446049250313e-16  # np.spacing(1.0)
    fn = fn.to(v.device)
    lam = lam.to(v.device, v.dtype)
    one = torch.ones_like(lam)
    lp = torch.log1p(v.abs())
    small = lam.abs() < eps
    yj_pos = torch.where(small, lp, torch.expm1(lam * lp) / torch.where(small, one, lam))
    two = 2 - lam
    near2 = two.abs() <= eps
    yj_neg = torch.where(near2, -lp, -torch.expm1(two * lp) / torch.where(near2, one, two))
    yj = torch.where(v >= 0, yj_pos, yj_neg)
    lg = torch.log(v)
    zero = lam == 0
    bc = torch.where(zero, lg, torch.expm1(lam * lg) / torch.where(zero, one, lam))
    return torch.where(fn == 1, torch.log1p(v), torch.where(fn == 2, torch.sqrt(v), torch.where(
        fn == 3, yj, torch.where(fn == 4, bc, v))))


def table_transform_reference(xnum: torch.Tensor, codes: torch.Tensor, spec: TableSpec,
                              out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """float64 torch reference: builds the output column by column kind."""
    N = xnum.shape[0]
    dev = xnum.device
    p = spec.params.to(dev, torch.float64)
    x = xnum.detach().to(torch.float64)
    v = torch.where(torch.isnan(x), p[0], x)
    v = torch.where(v < p[1], p[1], torch.where(v > p[2], p[2], v))
    v = nonlinear_reference(v, p[6], p[7])
    num = (v - p[3]) * p[4] + p[5]
    out = torch.zeros((N, spec.W), dtype=torch.float64, device=dev)
    if spec.Fn:
        out[:, spec.num_out.to(dev)] = num
    if spec.Fi:
        out[:, spec.ind_out.to(dev)] = torch.isnan(x[:, spec.ind_src.to(dev)]).to(torch.float64)
    c = codes.to(dev, torch.int64)
    for j in range(spec.Fc):
        k = int(spec.cat_k[j])
        code = c[:, j]
        known = (code >= 0) & (code < k)
        off = int(spec.cat_off[j])
        if int(spec.cat_mode[j]) == 1:
            out[:, off] = torch.where(known, code.to(torch.float64), spec.cat_unk_value[j].to(dev))
            continue
        tab = spec.cat_tab[int(spec.cat_toff[j]):int(spec.cat_toff[j]) + k].to(dev)
        slot = torch.where(known, tab[code.clamp(0, max(k - 1, 0))] if k else torch.full_like(code, -1),
                           spec.cat_unk[j].to(dev))
        w = int(spec.cat_width[j])
        for s in range(w):
            out[:, off + s] = (slot == s).to(torch.float64)
    return out.to(out_dtype)


@kernel_op("kernelflow::table_transform", mutates_args=("out",), triton="kernelflow.triton.table")
def _table_op(xnum: torch.Tensor, codes: torch.Tensor, spec: list[torch.Tensor], W: int, out: torch.Tensor,
              backend: str) -> None:
    """xnum [N, Fn] float32/float64, codes [N, Fc] int32, spec: TableSpec.tensors() -> writes out [N, W]."""


@_table_op.kernel("torch")
def _(k, xnum, codes, spec, W, out):
    out.copy_(table_transform_reference(xnum, codes, TableSpec.from_tensors(W, spec), out.dtype))


@_table_op.kernel("triton")
def _(k, xnum, codes, spec, W, out):
    k.triton.table_transform(xnum, codes, TableSpec.from_tensors(W, spec), out)


@_table_op.kernel("cpu", "cuda")
def _(k, xnum, codes, spec, W, out):
    k.call("table_transform", mat(xnum), mat(codes), TableSpec.from_tensors(W, spec).pointers(), mat(out))


@_table_op.register_fake
def _(xnum, codes, spec, W, out, backend):
    return None


def table_transform(xnum: torch.Tensor, codes: torch.Tensor, spec: TableSpec, out: torch.Tensor | None = None,
                    out_dtype="float32", backend: str | None = None) -> torch.Tensor:
    """Write the [N, spec.W] matrix in one kernel launch. xnum [N, Fn] float32/float64 (NaN =
    missing), codes [N, Fc] int32 category indices (< 0 or >= K: unknown). Returns ``out``."""
    if not isinstance(xnum, torch.Tensor) or xnum.dim() != 2 or xnum.dtype not in (torch.float32, torch.float64):
        raise TypeError("xnum must be a 2-D float32 / float64 tensor")
    if xnum.shape[1] != spec.Fn:
        raise ValueError(f"xnum has {xnum.shape[1]} columns, the spec has {spec.Fn} numeric columns")
    if not isinstance(spec, TableSpec):
        raise TypeError(f"spec must be a kernelflow.ops.TableSpec, got {type(spec).__name__}")
    spec.validate()
    if spec.params.device != xnum.device:
        raise ValueError(f"spec is on {spec.params.device} but xnum is on {xnum.device} (use spec.to(device))")
    if not isinstance(codes, torch.Tensor) or codes.dim() != 2 or codes.shape != (xnum.shape[0], spec.Fc):
        raise ValueError(f"codes must be a tensor of shape ({xnum.shape[0]}, {spec.Fc})")
    if codes.dtype == torch.bool or codes.is_floating_point() or codes.is_complex():
        raise TypeError(f"codes must be an integer tensor, got {codes.dtype}")
    codes = codes.to(xnum.device)
    if codes.dtype != torch.int32:
        # one rule everywhere: a code outside [0, K) is unknown, also past int32 (no wraparound)
        c64 = codes.to(torch.int64)
        codes = torch.where((c64 >= 0) & (c64 < 2**31 - 1), c64, -1).to(torch.int32)
    if out is None:
        out = torch.empty((xnum.shape[0], spec.W), dtype=_out_dtype(out_dtype, "out_dtype"), device=xnum.device)
        C = _ext.ext()
        if out.device.type == "cpu" and out.numel() and C is not None:
            # torch's allocator does not ask for huge pages (numpy's does): a fresh output of 1.7 GB
            # would take 400k 4 KB page faults on its first write (csrc/common/stream_store.h)
            C.advise_fresh_output(out.data_ptr(), out.numel() * out.element_size())
    else:
        check_out(out, (xnum.shape[0], spec.W), xnum.device, (torch.float32, torch.float64, torch.float16, torch.bfloat16))
        for name, t in (("xnum", xnum), ("codes", codes)):
            if overlaps(out, t):
                raise ValueError(f"out overlaps {name}: the kernel would read what it has written")
    _table_op(xnum, codes, spec.tensors(), spec.W, out, _table_op.resolve(backend, xnum.device))
    return out
