"""The fitted pipeline (``kernelflow.nn.Preprocess``) as a graph of standard ONNX ops.

``GraphPreprocess`` computes exactly what ``Preprocess`` computes, in float32 and with torch ops
that map one-to-one onto ops TensorRT's ONNX parser supports (IsNaN, Where, Less, Greater,
Sub, Mul, Add, Log, Exp, Div, Abs, Sqrt, Gather, Equal, And, Cast, Concat): no scatter, no
float64, no ``ai.onnx.ml``. ``export_onnx`` swaps every ``Preprocess`` of a model for one of
these before tracing; the float64 fitted parameters become float32 initializers here.

Accuracy: log1p and expm1 are evaluated with Kahan's corrections (``u = 1 + x;
log1p(x) = x * log(u) / (u - 1)``), so the float32 graph keeps full relative precision for
small arguments, where ``log(1 + x)`` would not.
"""

from __future__ import annotations

import torch
from torch import nn


def log1p_f32(x: torch.Tensor) -> torch.Tensor:
    """log1p from Log and Div only (Kahan): exact to a few ulp for every x > -1."""
    u = 1.0 + x
    d = u - 1.0
    safe = torch.where(d == 0, torch.ones_like(d), d)
    # u == 1: x is below half an ulp of 1 and log1p(x) == x to float32 precision
    return torch.where(d == 0, x, torch.log(u) * (x / safe))


def expm1_f32(x: torch.Tensor) -> torch.Tensor:
    """expm1 from Exp, Log and Div only (Kahan): exact to a few ulp, inf/-1 kept at the ends."""
    u = torch.exp(x)
    d = u - 1.0
    lu = torch.log(u)
    ok = (d != 0) & (d != -1.0) & torch.isfinite(u)
    safe = torch.where(ok, lu, torch.ones_like(lu))
    return torch.where(ok, d * (x / safe), torch.where(d == 0, x, d))


def nonlinear_f32(v: torch.Tensor, fn: int, lam: torch.Tensor) -> torch.Tensor:
    """log1p / sqrt / Yeo-Johnson / Box-Cox of v [N, F] float32 with per-column lam [F] float32,
    as ``kernelflow.ops.nonlinear_reference`` (scipy's formulas and eps rules)."""
    if fn == 1:
        return log1p_f32(v)
    if fn == 2:
        return torch.sqrt(v)
    eps = 2.220446049250313e-16  # np.spacing(1.0), as scipy: decided in float64 when the graph is built
    one = torch.ones_like(lam)
    if fn == 3:
        lp = log1p_f32(torch.abs(v))
        small = torch.abs(lam) < eps
        pos = torch.where(small, lp, expm1_f32(lam * lp) / torch.where(small, one, lam))
        two = 2.0 - lam
        near2 = torch.abs(two) <= eps
        neg = torch.where(near2, -lp, -expm1_f32(two * lp) / torch.where(near2, one, two))
        return torch.where(v >= 0, pos, neg)
    if fn == 4:
        lg = torch.log(v)
        zero = lam == 0
        return torch.where(zero, lg, expm1_f32(lam * lg) / torch.where(zero, one, lam))
    return v


class GraphPreprocess(nn.Module):
    """Export form of a fitted ``Preprocess``: num [N, Fn] float32 (NaN = missing), cat [N, Fc]
    int64 codes (-1 or >= the column's category count: unknown), passthrough [N, Fp] float32
    or None -> [N, W] float32 (cast to ``out_dtype`` at the end)."""

    def __init__(self, pre: nn.Module, out_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        f32 = lambda t: t.detach().to(torch.float32).cpu().clone()  # noqa: E731
        p = pre.num_params.detach().double().cpu()  # [6, Fn] fill, lo, hi, shift, inv, offset
        self.n_numeric, self.n_ind, self.n_pass, self.n_out = pre.n_numeric, pre.n_ind, pre.n_pass, pre.n_out
        self.nonlinear, self.ordinal = int(pre.nonlinear), bool(pre.ordinal)
        self.out_dtype = out_dtype or pre.out_dtype
        self.has_fill = bool(torch.any(~torch.isnan(p[0])))
        self.has_lo, self.has_hi = bool(torch.any(p[1] > -torch.inf)), bool(torch.any(p[2] < torch.inf))
        self.has_shift, self.has_offset = bool(torch.any(p[3] != 0)), bool(torch.any(p[5] != 0))
        self.has_inv = bool(torch.any(p[4] != 1))
        for i, name in enumerate(("fill", "lo", "hi", "shift", "inv_scale", "offset")):
            self.register_buffer(name, f32(p[i]))  # [Fn] float32 initializers
        self.register_buffer("lambdas", f32(pre.lambdas))  # [Fn]
        self.register_buffer("indicator_index", pre.indicator_index.detach().cpu().clone())  # [Fi] int64
        Fc = pre.cat_offset.shape[0]
        self.n_cat = Fc
        first = self.n_numeric + self.n_ind
        self.w_cat = self.n_out - first - self.n_pass
        # Per column j a block of K_j + 1 slots in `slots`: the codes' slots, then the unknown slot.
        table, base = pre.slot_table.detach().cpu(), pre.table_base.detach().cpu()
        sizes = [int((base[j + 1] if j + 1 < Fc else table.shape[0]) - base[j]) for j in range(Fc)]
        ext, ext_base = [], []
        for j in range(Fc):
            ext_base.append(sum(k + 1 for k in sizes[:j]))
            ext.append(table[int(base[j]):int(base[j]) + sizes[j]])
            ext.append(pre.unknown_slot.detach().cpu()[j:j + 1])
        self.register_buffer("cat_k", torch.tensor(sizes, dtype=torch.int64))  # [Fc] categories per column
        self.register_buffer("slot_base", torch.tensor(ext_base, dtype=torch.int64))  # [Fc]
        self.register_buffer("slots", torch.cat(ext) if ext else torch.zeros(1, dtype=torch.int64))  # [sum K+1]
        # Per one-hot output column: its source categorical column and the slot that sets it.
        src, slot = [], []
        offs = pre.cat_offset.detach().cpu().tolist()
        for j in range(Fc):
            end = offs[j + 1] if j + 1 < Fc else self.n_out - self.n_pass
            for s in range(end - offs[j]):
                src.append(j)
                slot.append(s)
        self.register_buffer("col_src", torch.tensor(src, dtype=torch.int64))  # [Wc]
        self.register_buffer("col_slot", torch.tensor(slot, dtype=torch.int64))  # [Wc]
        self.register_buffer("unknown_value", torch.tensor(float(pre.unknown_value), dtype=torch.float32))

    def numeric(self, x: torch.Tensor) -> torch.Tensor:
        """Impute -> clip -> nonlinear -> scale of x [N, Fn] float32, all in float32."""
        v = torch.where(torch.isnan(x), self.fill, x) if self.has_fill else x
        if self.has_lo:
            v = torch.where(v < self.lo, self.lo, v)  # NaN stays NaN, as in the kernels
        if self.has_hi:
            v = torch.where(v > self.hi, self.hi, v)
        v = nonlinear_f32(v, self.nonlinear, self.lambdas)
        if self.has_shift:
            v = v - self.shift  # exact when v is close to shift (Sterbenz): no folding into the offset
        if self.has_inv:
            v = v * self.inv_scale
        if self.has_offset:
            v = v + self.offset
        return v

    def categorical(self, cat: torch.Tensor) -> torch.Tensor:
        """cat [N, Fc] int64 codes -> [N, Wc] one-hot or [N, Fc] ordinal values, float32."""
        c = cat.to(torch.int64)
        known = (c >= 0) & (c < self.cat_k)
        if self.ordinal:
            return torch.where(known, c.to(torch.float32), self.unknown_value)
        idx = self.slot_base + torch.where(known, c, self.cat_k)  # [N, Fc] into `slots`
        s = self.slots.index_select(0, idx.reshape(-1)).reshape(idx.shape)  # [N, Fc] slot (-1: no column)
        return (s.index_select(1, self.col_src) == self.col_slot).to(torch.float32)  # [N, Wc]

    def forward(self, num: torch.Tensor, cat: torch.Tensor, passthrough: torch.Tensor | None = None) -> torch.Tensor:
        x = num.to(torch.float32)
        parts = [self.numeric(x)] if self.n_numeric else []
        if self.n_ind:
            parts.append(torch.isnan(x.index_select(1, self.indicator_index)).to(torch.float32))
        if self.n_cat:
            parts.append(self.categorical(cat))
        if self.n_pass:
            if passthrough is None:
                raise ValueError(f"this pipeline has {self.n_pass} passthrough columns: pass them as `passthrough`")
            parts.append(passthrough.to(torch.float32))
        y = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return y if self.out_dtype == torch.float32 else y.to(self.out_dtype)
