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

import numpy as np
import torch
from torch import nn

from kernelflow import ops


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


def _f32_split(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """v float64 -> (hi, lo) float32 with hi + lo == v to ~2^-48 relative (a double-float pair)."""
    hi = v.astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        lo = np.where(np.isfinite(v), v - hi.astype(np.float64), 0.0).astype(np.float32)
    return hi, lo


def _ceil_f32(v: np.ndarray) -> np.ndarray:
    """The smallest float32 >= v: for a float32 x, x < v exactly when x < _ceil_f32(v)."""
    f = v.astype(np.float32)
    return np.where(f.astype(np.float64) < v, np.nextafter(f, np.float32(np.inf)), f)


def _floor_f32(v: np.ndarray) -> np.ndarray:
    f = v.astype(np.float32)
    return np.where(f.astype(np.float64) > v, np.nextafter(f, np.float32(-np.inf)), f)


class _Plan:
    """Float64 construction of the float32 numeric graph of one fitted block (see ``numeric``)."""

    def __init__(self, p: np.ndarray, fn: int, lam: np.ndarray) -> None:
        fill, lo, hi, shift, inv, off = p
        self.fn, F = fn, p.shape[1]
        fn_t = torch.full((F,), fn, dtype=torch.int64)
        lam_t = torch.from_numpy(lam.astype(np.float64))

        def T(v):  # the nonlinear function of the kernels (float64, elementwise per column)
            return ops.nonlinear_reference(torch.from_numpy(np.asarray(v, np.float64).reshape(1, F)), fn_t, lam_t).numpy()[0]

        def full(v):  # the whole transform of an already imputed value, as the module computes it
            v = np.asarray(v, np.float64)
            with np.errstate(invalid="ignore"):
                v = np.where(v < lo, lo, np.where(v > hi, hi, v))
            return (T(v) - shift) * inv + off

        with np.errstate(all="ignore"):
            self.y_fill = full(fill)  # NaN where there is no imputation
            self.y_lo, self.y_hi = full(lo), full(hi)
            self.y_pinf, self.y_ninf = full(np.full(F, np.inf)), full(np.full(F, -np.inf))
        self.lo_c, self.hi_c = _ceil_f32(lo), _floor_f32(hi)
        self.has_fill = bool(np.any(~np.isnan(fill)))
        self.has_lo, self.has_hi = bool(np.any(lo > -np.inf)), bool(np.any(hi < np.inf))
        self.inv, self.off = inv, off
        self.branches = []  # (sign, ref_hi, ref_lo, r, lam_eff, linear_mask, A, C) per branch
        with np.errstate(all="ignore"):
            if fn == 0:
                self.s_hi, self.s_lo = _f32_split(shift)
            elif fn == 2:  # sqrt(v) - sqrt(v0) = (v - v0) / (sqrt(v) + sqrt(v0)), v0 = shift^2
                v0 = np.where(shift > 0, shift * shift, 0.0)
                h, l = _f32_split(v0)
                v0 = h.astype(np.float64) + l
                self.branches.append((1.0, h, l, np.sqrt(v0), None, None, inv, inv * (np.sqrt(v0) - shift) + off,
                                      None, None, None))
            else:
                self._power_branches(fn, lam, shift, inv, off, T)

    def _power_branches(self, fn, lam, shift, inv, off, T):
        """log1p, Yeo-Johnson and Box-Cox about a reference point v0 per column and branch:
        T(v) - T(v0) = E * expm1(lam * log1p((v - v0) * r)) / lam (or its lam -> 0 limit), so
        the float32 graph never forms T(v) itself (which overflows float32 for large lam * log v)
        nor cancels T(v) against the mean. v0 solves T(v0) = shift, so the outputs near the
        mean keep full relative precision."""
        eps = 2.220446049250313e-16  # np.spacing(1.0), the kernels' rule for lam -> 0 (and 2)
        F = lam.shape[0]
        if fn == 1:
            lam = np.zeros(F)
        specs = []
        if fn in (1, 3):  # v >= 0: T = expm1(lam * log1p(v)) / lam, log1p(v) when lam ~ 0
            small = np.abs(lam) < eps if fn == 3 else np.ones(F, bool)
            ok = (shift > 0) & (small | (1 + lam * shift > 0))
            v0 = np.where(ok, np.where(small, np.expm1(np.where(ok, shift, 0)),
                                       np.expm1(np.log1p(np.where(ok, lam * shift, 0)) / np.where(small, 1, lam))), 0.0)
            specs.append((1.0, v0, 1.0, lam, small))
        if fn == 3:  # v < 0, u = -v: T = -expm1((2 - lam) log1p(u)) / (2 - lam)
            two = 2 - lam
            near2 = np.abs(two) <= eps
            ok = (shift < 0) & (near2 | (1 - two * shift > 0))
            u0 = np.where(ok, np.where(near2, np.expm1(np.where(ok, -shift, 0)),
                                       np.expm1(np.log1p(np.where(ok, -two * shift, 0)) / np.where(near2, 1, two))), 0.0)
            specs.append((-1.0, u0, 1.0, two, near2))
        if fn == 4:  # v > 0: T = expm1(lam log v) / lam = about b0: b0^lam expm1(lam log1p((v - b0)/b0)) / lam
            small = lam == 0
            ok = small | (1 + lam * shift > 0)
            b0 = np.where(ok, np.where(small, np.exp(np.where(small, shift, 0)),
                                       np.exp(np.log1p(np.where(ok, lam * shift, 0)) / np.where(small, 1, lam))), 1.0)
            b0 = np.where(np.isfinite(b0) & (b0 > 0), b0, 1.0)
            specs.append((1.0, b0, 0.0, lam, small))
        for sign, v0, base, k, linear in specs:
            h, l = _f32_split(v0)
            v0 = h.astype(np.float64) + l  # the point the graph really uses
            r = 1.0 / (base + v0)  # log1p((v - v0) / (base + v0)): base 1 for log1p(v), 0 for log(v)
            E = np.where(linear, 1.0, (base + v0) ** k)
            A = sign * inv * E / np.where(linear, 1.0, k)  # T(v) - T(v0) = sign * E * g / k, g = expm1(k L) or L
            A = np.where(linear, sign * inv, A)
            C = inv * (T(sign * v0) - shift) + off
            # far below v0 ((v - v0) r < -1/2) log1p((v - v0) r) loses v's digits: there T(v) is
            # small next to the mean, and (T(v) - shift) * inv is evaluated directly
            Ad = np.where(linear, sign * inv, sign * inv / np.where(linear, 1.0, k))
            Cd = off - inv * shift
            self.branches.append((sign, h, l, r, k, linear, A, C, base, Ad, Cd))


class GraphPreprocess(nn.Module):
    """Export form of a fitted ``Preprocess``: num [N, Fn] float32 (NaN = missing), cat [N, Fc]
    int64 codes (-1 or >= the column's category count: unknown), passthrough [N, Fp] float32
    or None -> [N, W] float32 (cast to ``out_dtype`` at the end)."""

    def __init__(self, pre: nn.Module, out_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        f32 = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float64)).to(torch.float32)  # noqa: E731
        p = pre.num_params.detach().double().cpu().numpy()  # [6, Fn] fill, lo, hi, shift, inv, offset
        self.n_numeric, self.n_ind, self.n_pass, self.n_out = pre.n_numeric, pre.n_ind, pre.n_pass, pre.n_out
        self.nonlinear, self.ordinal = int(pre.nonlinear), bool(pre.ordinal)
        self.out_dtype = out_dtype or pre.out_dtype
        plan = _Plan(p, self.nonlinear, pre.lambdas.detach().double().cpu().numpy())
        self.has_fill, self.has_lo, self.has_hi = plan.has_fill, plan.has_lo, plan.has_hi
        self.has_inf = self.nonlinear != 0  # the power forms cannot evaluate +-inf: their outputs are constants
        # [Fn] float32 initializers; the y_* are outputs computed in float64 when the graph is built
        for name in ("y_fill", "y_lo", "y_hi", "y_pinf", "y_ninf", "lo_c", "hi_c", "inv", "off"):
            self.register_buffer(name, f32(getattr(plan, name)))
        if self.nonlinear == 0:
            self.register_buffer("s_hi", f32(plan.s_hi))
            self.register_buffer("s_lo", f32(plan.s_lo))
        self.n_branch = len(plan.branches)
        for i, (sign, h, l, r, k, linear, A, C, base, Ad, Cd) in enumerate(plan.branches):
            self.register_buffer(f"b{i}_ref_hi", f32(h))
            self.register_buffer(f"b{i}_ref_lo", f32(l))
            self.register_buffer(f"b{i}_r", f32(r))
            self.register_buffer(f"b{i}_A", f32(A))
            self.register_buffer(f"b{i}_C", f32(C))
            if k is not None:
                self.register_buffer(f"b{i}_Ad", f32(Ad))
                self.register_buffer(f"b{i}_Cd", f32(Cd))
                self.__dict__[f"b{i}_log1p"] = base == 1.0  # log1p(v) (log1p, Yeo-Johnson) or log(v) (Box-Cox)
                self.register_buffer(f"b{i}_k", f32(np.where(linear, 0.0, k)))
                self.register_buffer(f"b{i}_linear", torch.as_tensor(np.asarray(linear, bool)))
                self.__dict__[f"b{i}_any_linear"] = bool(np.any(linear))
                self.__dict__[f"b{i}_all_linear"] = bool(np.all(linear))
            self.__dict__[f"b{i}_sign"] = sign
        ind = pre.indicator_index.detach().cpu()
        sel = torch.zeros(self.n_numeric, ind.shape[0], dtype=torch.float32)
        sel[ind, torch.arange(ind.shape[0])] = 1.0
        # [Fn, Fi] 0/1: isnan(x) @ sel picks the indicator columns (exact, also in TF32); a Gather
        # along axis 1 is several times slower in ONNX Runtime
        self.register_buffer("indicator_select", sel)
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
        # one-hot block j: (slot_j == arange(width_j)), one Slice + Equal per column (elementwise;
        # a Gather of the slots along axis 1 is slow in ONNX Runtime)
        self.cat_widths = [src.count(j) for j in range(Fc)]
        for j, w in enumerate(self.cat_widths):
            self.register_buffer(f"cat_arange{j}", torch.arange(w, dtype=torch.int64))  # [width_j]
        self.register_buffer("unknown_value", torch.tensor(float(pre.unknown_value), dtype=torch.float32))

    def _branch(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """A * g(log1p(((sign x - ref_hi) - ref_lo) * r)) + C, g = expm1(k L) or L (see _Plan)."""
        b = lambda n: getattr(self, f"b{i}_{n}")  # noqa: E731
        u = x if self.__dict__[f"b{i}_sign"] > 0 else -x
        d = ((u - b("ref_hi")) - b("ref_lo")) * b("r")

        def g(L):
            if self.__dict__[f"b{i}_all_linear"]:
                return L
            if self.__dict__[f"b{i}_any_linear"]:
                return torch.where(b("linear"), L, expm1_f32(b("k") * L))
            return expm1_f32(b("k") * L)

        near = b("A") * g(log1p_f32(d)) + b("C")
        far = b("Ad") * g(log1p_f32(u) if self.__dict__[f"b{i}_log1p"] else torch.log(u)) + b("Cd")
        return torch.where(d < -0.5, far, near)

    def numeric(self, x: torch.Tensor) -> torch.Tensor:
        """Impute -> clip -> nonlinear -> scale of x [N, Fn] float32, all in float32, to within a
        few ulp of the float64 module: imputed, clipped and infinite values take outputs computed
        in float64 when the graph is built; the rest is evaluated about a reference point."""
        if self.nonlinear == 0:
            y = ((x - self.s_hi) - self.s_lo) * self.inv + self.off  # x - s_hi is exact near the mean
        elif self.nonlinear == 2:
            d = (x - self.b0_ref_hi) - self.b0_ref_lo
            y = torch.where(d == 0, torch.zeros_like(d), d / (torch.sqrt(x) + self.b0_r)) * self.b0_A + self.b0_C
        elif self.nonlinear == 3:
            y = torch.where(x >= 0, self._branch(0, x), self._branch(1, x))
        else:
            y = self._branch(0, x)
        if self.has_inf:
            y = torch.where(x == float("inf"), self.y_pinf, torch.where(x == -float("inf"), self.y_ninf, y))
        if self.has_hi:
            y = torch.where(x > self.hi_c, self.y_hi, y)
        if self.has_lo:
            y = torch.where(x < self.lo_c, self.y_lo, y)
        if self.has_fill:
            y = torch.where(torch.isnan(x), self.y_fill, y)
        return y

    def categorical(self, cat: torch.Tensor) -> torch.Tensor:
        """cat [N, Fc] int64 codes -> [N, Wc] one-hot or [N, Fc] ordinal values, float32."""
        c = cat.to(torch.int64)
        known = (c >= 0) & (c < self.cat_k)
        if self.ordinal:
            return torch.where(known, c.to(torch.float32), self.unknown_value)
        idx = self.slot_base + torch.where(known, c, self.cat_k)  # [N, Fc] into `slots`
        s = self.slots.index_select(0, idx.reshape(-1)).reshape(idx.shape)  # [N, Fc] slot (-1: no column)
        blocks = [s[:, j:j + 1] == getattr(self, f"cat_arange{j}") for j, w in enumerate(self.cat_widths) if w]
        oh = torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]
        return oh.to(torch.float32)  # [N, Wc]

    def forward(self, num: torch.Tensor, cat: torch.Tensor, passthrough: torch.Tensor | None = None) -> torch.Tensor:
        x = num.to(torch.float32)
        parts = [self.numeric(x)] if self.n_numeric else []
        if self.n_ind:
            parts.append(torch.isnan(x).to(torch.float32) @ self.indicator_select)
        if self.n_cat:
            parts.append(self.categorical(cat))
        if self.n_pass:
            if passthrough is None:
                raise ValueError(f"this pipeline has {self.n_pass} passthrough columns: pass them as `passthrough`")
            parts.append(passthrough.to(torch.float32))
        y = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return y if self.out_dtype == torch.float32 else y.to(self.out_dtype)
