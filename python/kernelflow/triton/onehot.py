"""One-hot and ordinal encoding in Triton (same arguments and semantics as csrc/cpu/onehot.h).

One-hot works per output element: a [BLOCK_R, BLOCK_C] tile of output columns looks up, through
``slots``, which input column and which position of its block each output column is, so stores
are contiguous along the row; the row's codes and table entries are gathered (small, cached).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _slot_entry(code, K):
    # code >= 0 and < K: itself; -1 (missing): K; anything else (unknown): K + 1
    return tl.where((code >= 0) & (code < K), code, tl.where(code == -1, K, K + 1))


@triton.jit
def _one_hot_kernel(
    codes_ptr,  # [rows, F] int32, strides (scr, scc)
    feat_ptr,  # [4, F] int64: out_offset, width, table_offset, K
    table_ptr,  # [T] int32
    slots_ptr,  # [2, S] int32: column, position in its block
    out_ptr,  # [rows, W], row stride sor, unit column stride
    err_ptr,  # [F] int32
    rows, F, T, S, W, scr, scc, sor,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_r = tl.program_id(0)
    pid_c = tl.program_id(1)
    ridx = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    sidx = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    smask = sidx < S
    f = tl.load(slots_ptr + sidx, mask=smask, other=0).to(tl.int64)
    k = tl.load(slots_ptr + S + sidx, mask=smask, other=0)
    K = tl.load(feat_ptr + 3 * F + f, mask=smask, other=0)
    toff = tl.load(feat_ptr + 2 * F + f, mask=smask, other=0)
    mask = (ridx[:, None] < rows) & smask[None, :]
    r64 = ridx[:, None].to(tl.int64)
    code = tl.load(codes_ptr + r64 * scr + f[None, :] * scc, mask=mask, other=0).to(tl.int64)
    t = toff[None, :] + _slot_entry(code, K[None, :])
    tin = (t >= 0) & (t < T)
    o = tl.load(table_ptr + t, mask=mask & tin, other=-2)
    # count each raising value once: at the first position of its column's block
    bad = mask & (o == -2) & (k[None, :] == 0)
    tl.atomic_add(err_ptr + f[None, :] + 0 * r64, bad.to(tl.int32), mask=bad)
    y = tl.where(o == k[None, :], 1.0, 0.0)
    wmask = mask & (sidx[None, :] < W)
    tl.store(out_ptr + r64 * sor + sidx[None, :].to(tl.int64), y.to(out_ptr.dtype.element_ty), mask=wmask)


@triton.jit
def _ordinal_kernel(
    codes_ptr,  # [rows, F] int32, strides (scr, scc)
    feat_ptr,  # [3, F] int64: table_offset, K, error bits
    table_ptr,  # [T] float64
    out_ptr,  # [rows, F], row stride sor, unit column stride
    err_ptr,  # [F] int32
    rows, F, T, scr, scc, sor,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_r = tl.program_id(0)
    pid_c = tl.program_id(1)
    ridx = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    cidx = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cidx < F
    toff = tl.load(feat_ptr + cidx, mask=cmask, other=0)
    K = tl.load(feat_ptr + F + cidx, mask=cmask, other=0)
    bits = tl.load(feat_ptr + 2 * F + cidx, mask=cmask, other=0)
    mask = (ridx[:, None] < rows) & cmask[None, :]
    r64 = ridx[:, None].to(tl.int64)
    c64 = cidx[None, :].to(tl.int64)
    code = tl.load(codes_ptr + r64 * scr + c64 * scc, mask=mask, other=0).to(tl.int64)
    s = _slot_entry(code, K[None, :])
    t = toff[None, :] + s
    err = ((s == K[None, :]) & ((bits[None, :] & 1) != 0)) | ((s == K[None, :] + 1) & ((bits[None, :] & 2) != 0))
    err = err | (t < 0) | (t >= T)
    v = tl.load(table_ptr + t, mask=mask & ~err, other=0.0)
    bad = mask & err
    tl.atomic_add(err_ptr + c64 + 0 * r64, bad.to(tl.int32), mask=bad)
    optr = out_ptr + r64 * sor + c64
    if out_ptr.dtype.element_ty == tl.int64:
        v = tl.where(v != v, 0.0, v)  # NaN is rejected before int64 output; keep the cast defined
        tl.store(optr, v.to(tl.int64), mask=mask)
    elif out_ptr.dtype.element_ty == tl.float64:
        tl.store(optr, v, mask=mask)
    else:  # through float32, as the CPU and CUDA kernels round
        tl.store(optr, v.to(tl.float32).to(out_ptr.dtype.element_ty), mask=mask)


def _blocks(device: torch.device) -> tuple[int, int]:
    return (16, 32) if device.type == "cpu" else (16, 128)  # small tiles under the interpreter


def one_hot(codes: torch.Tensor, feat: torch.Tensor, table: torch.Tensor, slots: torch.Tensor,
            out: torch.Tensor, errors: torch.Tensor) -> torch.Tensor:
    """codes [rows, F] int32; feat [4, F] int64; table [T] int32; slots [2, S] int32;
    out [rows, W] written in place; errors [F] int32 incremented."""
    rows, F = codes.shape
    S = slots.shape[1]
    if rows == 0 or S == 0:
        return out
    block_r, block_c = _blocks(codes.device)
    grid = (triton.cdiv(rows, block_r), triton.cdiv(S, block_c))
    sor = out.stride(0) if out.shape[1] > 0 else 0
    # zero-width output (only check-only slots): a real 1-element buffer, never written, instead of a null pointer
    dst = out if out.numel() > 0 else torch.empty(1, dtype=out.dtype, device=out.device)
    _one_hot_kernel[grid](codes, feat.contiguous(), table.contiguous(), slots.contiguous(), dst, errors,
                          rows, F, table.numel(), S, out.shape[1], codes.stride(0), codes.stride(1), sor,
                          BLOCK_R=block_r, BLOCK_C=block_c)
    return out


def ordinal_encode(codes: torch.Tensor, feat: torch.Tensor, table: torch.Tensor, out: torch.Tensor,
                   errors: torch.Tensor) -> torch.Tensor:
    """codes [rows, F] int32; feat [3, F] int64; table [T] float64; out [rows, F] written in place."""
    rows, F = codes.shape
    if rows == 0 or F == 0:
        return out
    block_r, block_c = _blocks(codes.device)
    grid = (triton.cdiv(rows, block_r), triton.cdiv(F, block_c))
    _ordinal_kernel[grid](codes, feat.contiguous(), table.to(torch.float64).contiguous(), out, errors,
                          rows, F, table.numel(), codes.stride(0), codes.stride(1), out.stride(0),
                          BLOCK_R=block_r, BLOCK_C=block_c)
    return out
