"""Fused distillation loss + gradient in Triton: one program per row.

Same formula and arguments as csrc/cpu/distill.h. Sweep 1 walks the row in chunks of BLOCK
classes keeping online (max, sum) for a = s/T, b = t/T and s plus sum exp(b - mb) * (b - a)
(fp32); sweep 2 writes d loss / d s. When the row fits one chunk (C <= BLOCK) it is loaded once
and kept in registers for sweep 2.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _merge(m, z, w, cm, cz, cw):
    # a chunk with no finite value (cm = -inf) adds nothing; otherwise rescale to the larger max
    new_m = tl.maximum(m, cm)
    skip = cm == float("-inf")
    fm = tl.where(skip | (m == float("-inf")), 0.0, tl.exp(m - new_m))
    fc = tl.where(skip, 0.0, tl.exp(cm - new_m))
    m_out = tl.where(skip, m, new_m)
    fm = tl.where(skip, 1.0, fm)
    return m_out, z * fm + cz * fc, w * fm + cw * fc


@triton.jit
def _distill_kernel(
    s_ptr, t_ptr,  # [rows, C] float32/float16/bfloat16, strides (srs, scs), (trs, tcs)
    y_ptr,  # [rows] int64
    w_ptr,  # [1] float32: CE weight
    loss_ptr,  # [rows] float32
    g_ptr,  # [rows, C] dtype of s, row stride grs, unit column stride
    C, srs, scs, trs, tcs, grs,
    inv_t, kl_weight, ignore_index,
    BLOCK: tl.constexpr, ONE_CHUNK: tl.constexpr,
):
    r = tl.program_id(0).to(tl.int64)
    y = tl.load(y_ptr + r)
    use_ce = y != ignore_index
    bad = use_ce & ((y < 0) | (y >= C))
    wce = tl.where(use_ce, tl.load(w_ptr), 0.0)
    ninf = float("-inf")
    offs = tl.arange(0, BLOCK)
    ma = ninf; za = 0.0; mb = ninf; zb = 0.0; wb = 0.0; mx = ninf; zx = 0.0  # noqa: E702
    nan_count = 0.0
    x = tl.zeros([BLOCK], dtype=tl.float32)
    b = tl.zeros([BLOCK], dtype=tl.float32)
    for c0 in range(0, C, BLOCK):
        cols = c0 + offs
        msk = cols < C
        x = tl.load(s_ptr + r * srs + cols * scs, mask=msk, other=ninf).to(tl.float32)
        b = tl.load(t_ptr + r * trs + cols * tcs, mask=msk, other=ninf).to(tl.float32) * inv_t
        nan_count += tl.sum(((x != x) | (b != b)).to(tl.float32), axis=0)
        a = x * inv_t
        cmx = tl.max(x, axis=0)
        cma = cmx * inv_t  # T > 0
        cmb = tl.max(b, axis=0)
        ea = tl.where(msk, tl.exp(a - cma), 0.0)
        ex = tl.where(msk, tl.exp(x - cmx), 0.0)
        eb = tl.where(msk, tl.exp(b - cmb), 0.0)
        cwb = tl.sum(tl.where(eb == 0.0, 0.0, eb * (b - a)), axis=0)  # p_t = 0 adds nothing
        ma, za, _u = _merge(ma, za, 0.0, cma, tl.sum(ea, axis=0), 0.0)
        mb, zb, wb = _merge(mb, zb, wb, cmb, tl.sum(eb, axis=0), cwb)
        mx, zx, _u = _merge(mx, zx, 0.0, cmx, tl.sum(ex, axis=0), 0.0)
    poison = (nan_count > 0) | bad
    nanv = float("nan")
    lse_a = tl.where(poison, nanv, ma + tl.log(za))
    lse_b = tl.where(poison, nanv, mb + tl.log(zb))
    lse_x = tl.where(poison, nanv, mx + tl.log(zx))
    y_safe = tl.where(use_ce & ~bad, y, 0)
    s_y = tl.load(s_ptr + r * srs + y_safe * scs).to(tl.float32)
    loss = kl_weight * (wb / zb - lse_b + lse_a)
    loss = tl.where(use_ce, loss + wce * (lse_x - s_y), loss)
    tl.store(loss_ptr + r, tl.where(poison, nanv, loss))
    gk = kl_weight * inv_t
    for c0 in range(0, C, BLOCK):
        cols = c0 + offs
        msk = cols < C
        if not ONE_CHUNK:
            x = tl.load(s_ptr + r * srs + cols * scs, mask=msk, other=0.0).to(tl.float32)
            b = tl.load(t_ptr + r * trs + cols * tcs, mask=msk, other=0.0).to(tl.float32) * inv_t
        g = gk * (tl.exp(x * inv_t - lse_a) - tl.exp(b - lse_b))
        onehot = tl.where(cols == y, 1.0, 0.0)
        g = tl.where(use_ce, g + wce * (tl.exp(x - lse_x) - onehot), g)
        tl.store(g_ptr + r * grs + cols, g.to(g_ptr.dtype.element_ty), mask=msk)


def distill_loss(s: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, ce_weight: torch.Tensor,
                 temperature: float, kl_weight: float, ignore_index: int,
                 loss: torch.Tensor, grad: torch.Tensor) -> None:
    """s, t [rows, C]; labels [rows] int64; ce_weight [1] float32; writes loss [rows] float32 and grad [rows, C]."""
    rows, C = s.shape
    if rows == 0:
        return
    interp = s.device.type == "cpu"
    cap = 1024 if interp else 8192
    block = min(cap, triton.next_power_of_2(max(C, 2)))
    one = C <= block
    _distill_kernel[(rows,)](
        s, t, labels, ce_weight, loss, grad, C, s.stride(0), s.stride(1), t.stride(0), t.stride(1), grad.stride(0),
        1.0 / temperature, kl_weight, ignore_index, BLOCK=block, ONE_CHUNK=one,
        num_warps=4 if block <= 2048 else 8,
    )
