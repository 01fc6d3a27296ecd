"""Fused whole-table transform in Triton, ONE launch: a program per [BLOCK_R rows x BLOCK_W
output columns] tile; each output column's descriptor (kind, source, slot) selects a gathered
numeric value, a missing indicator or a one-hot / ordinal value. Same formula as
csrc/common/table.h (the impute / clip / scale element functions are triton/transform.py's); arithmetic in fp32 (fp64 for float64 input or output) with the shift split
into hi + lo."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernelflow.triton.transform import impute_clip, scale_shift, with_shift_lo


@triton.jit
def _expm1(z):
    # exp(z) - 1 without cancellation for tiny z (Triton has no expm1)
    return tl.where(tl.abs(z) < 1e-5, z + 0.5 * z * z, tl.exp(z) - 1.0)


@triton.jit
def _log1p(v):
    return tl.where(tl.abs(v) < 1e-4, v - 0.5 * v * v + v * v * v / 3.0, tl.log(1.0 + v))


@triton.jit
def _nonlinear(v, fn, lam):
    """log1p / sqrt / Yeo-Johnson / Box-Cox (scipy's formulas and eps rules); fn 0 = identity."""
    eps = 2.220446049250313e-16
    pos = v >= 0
    lp = _log1p(tl.abs(v))
    safe_lam = tl.where(tl.abs(lam) < eps, 1.0, lam)
    yj_pos = tl.where(tl.abs(lam) < eps, lp, _expm1(lam * lp) / safe_lam)
    two = 2.0 - lam
    safe_two = tl.where(tl.abs(two) > eps, two, 1.0)
    yj_neg = tl.where(tl.abs(two) > eps, -_expm1(two * lp) / safe_two, -lp)
    yj = tl.where(pos, yj_pos, yj_neg)
    lg = tl.log(v)
    bc = tl.where(lam == 0, lg, _expm1(lam * lg) / tl.where(lam == 0, 1.0, lam))
    sq = tl.sqrt(tl.maximum(v, 0.0)) + tl.where(v < 0, float("nan"), 0.0)
    return tl.where(fn == 1, _log1p(v), tl.where(fn == 2, sq, tl.where(fn == 3, yj, tl.where(fn == 4, bc, v))))


@triton.jit
def _table_kernel(
    x_ptr, sxr, sxc,  # xnum [N, Fn]
    c_ptr, scr, scc,  # codes [N, Fc] int32
    p_ptr,  # [9, Fn] compute type: fill, lo, hi, shift, inv_scale, offset, fn, lambda, shift_lo
    ind_src_ptr, cat_k_ptr, cat_toff_ptr, cat_tab_ptr, cat_unk_ptr, cat_unkv_ptr,
    kind_ptr, src_ptr, slot_ptr,  # [W] int32 column descriptors
    out_ptr, sor,  # out [N, W]
    N, W, Fn,
    BLOCK_R: tl.constexpr, BLOCK_W: tl.constexpr,
):
    pid_r = tl.program_id(0)
    pid_w = tl.program_id(1)
    r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    w = pid_w * BLOCK_W + tl.arange(0, BLOCK_W)
    rmask = r < N
    wmask = w < W
    mask = rmask[:, None] & wmask[None, :]
    kind = tl.load(kind_ptr + w, mask=wmask, other=-1)
    src = tl.load(src_ptr + w, mask=wmask, other=0)
    slot_w = tl.load(slot_ptr + w, mask=wmask, other=-1)
    ct = p_ptr.dtype.element_ty
    r64 = r[:, None].to(tl.int64)
    # numeric columns (kind 0) and indicators (kind 1) read x; the indicator's numeric column
    is_num = kind == 0
    is_ind = kind == 1
    is_cat = kind >= 2
    xcol = tl.where(is_ind, tl.load(ind_src_ptr + src, mask=wmask & is_ind, other=0), src)
    xv = tl.load(x_ptr + r64 * sxr + xcol[None, :].to(tl.int64) * sxc,
                 mask=mask & (is_num | is_ind)[None, :], other=0.0).to(ct)
    nsrc = tl.where(is_num, src, 0)
    fill = tl.load(p_ptr + 0 * Fn + nsrc, mask=wmask & is_num, other=0.0)
    lo = tl.load(p_ptr + 1 * Fn + nsrc, mask=wmask & is_num, other=0.0)
    hi = tl.load(p_ptr + 2 * Fn + nsrc, mask=wmask & is_num, other=0.0)
    sh = tl.load(p_ptr + 3 * Fn + nsrc, mask=wmask & is_num, other=0.0)
    inv = tl.load(p_ptr + 4 * Fn + nsrc, mask=wmask & is_num, other=0.0)
    off = tl.load(p_ptr + 5 * Fn + nsrc, mask=wmask & is_num, other=0.0)
    fn = tl.load(p_ptr + 6 * Fn + nsrc, mask=wmask & is_num, other=0.0)
    lam = tl.load(p_ptr + 7 * Fn + nsrc, mask=wmask & is_num, other=0.0)[None, :]
    sl = tl.load(p_ptr + 8 * Fn + nsrc, mask=wmask & is_num, other=0.0)
    v = impute_clip(xv, fill[None, :], lo[None, :], hi[None, :])
    v = _nonlinear(v, fn[None, :], lam)
    ynum = scale_shift(v, sh[None, :], sl[None, :], inv[None, :], off[None, :])
    yind = tl.where(xv != xv, 1.0, 0.0).to(ct)
    # categorical columns (kind 2 one-hot, 3 ordinal) read their code
    csrc = tl.where(is_cat, src, 0)
    code = tl.load(c_ptr + r64 * scr + csrc[None, :].to(tl.int64) * scc, mask=mask & is_cat[None, :], other=-1)
    k = tl.load(cat_k_ptr + csrc, mask=wmask & is_cat, other=0)
    known = (code >= 0) & (code < k[None, :])
    toff = tl.load(cat_toff_ptr + csrc, mask=wmask & is_cat, other=0)
    unk = tl.load(cat_unk_ptr + csrc, mask=wmask & is_cat, other=-1)
    slot = tl.load(cat_tab_ptr + toff[None, :] + tl.where(known, code, 0), mask=mask & known & is_cat[None, :], other=-1)
    slot = tl.where(known, slot, unk[None, :])
    yhot = tl.where(slot == slot_w[None, :].to(tl.int64), 1.0, 0.0).to(ct)
    unkv = tl.load(cat_unkv_ptr + csrc, mask=wmask & is_cat, other=0.0).to(ct)
    yord = tl.where(known, code.to(ct), unkv[None, :])
    kk = kind[None, :]
    y = tl.where(kk == 0, ynum, tl.where(kk == 1, yind, tl.where(kk == 2, yhot, yord)))
    if out_ptr.dtype.element_ty != tl.float64:
        y = y.to(tl.float32)
    tl.store(out_ptr + r64 * sor + w[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


def table_transform(xnum: torch.Tensor, codes: torch.Tensor, spec, out: torch.Tensor) -> torch.Tensor:
    N = xnum.shape[0]
    if N == 0 or spec.W == 0:
        return out
    compute = torch.float64 if torch.float64 in (xnum.dtype, out.dtype) else torch.float32
    p = with_shift_lo(spec.params, compute)
    if spec.Fn == 0:  # keep a valid pointer
        p = torch.zeros((9, 1), dtype=compute, device=xnum.device)
    x = xnum if spec.Fn else torch.zeros((N, 1), dtype=xnum.dtype, device=xnum.device)
    c = codes if spec.Fc else torch.zeros((N, 1), dtype=torch.int32, device=xnum.device)
    Fn = max(spec.Fn, 1)
    nonempty = lambda t: t if t.numel() else torch.zeros(1, dtype=t.dtype, device=t.device)  # noqa: E731
    interp = xnum.device.type == "cpu"
    br, bw = (16, 32) if interp else (16, 128)
    grid = (triton.cdiv(N, br), triton.cdiv(spec.W, bw))
    _table_kernel[grid](
        x, x.stride(0), x.stride(1), c, c.stride(0), c.stride(1), p,
        nonempty(spec.ind_src), nonempty(spec.cat_k), nonempty(spec.cat_toff), nonempty(spec.cat_tab),
        nonempty(spec.cat_unk), nonempty(spec.cat_unk_value), spec.col_kind, spec.col_src, spec.col_slot,
        out, out.stride(0), N, spec.W, Fn, BLOCK_R=br, BLOCK_W=bw,
    )
    return out
