"""Ops: the fused table transform's spec and codes, one-hot / ordinal outputs, column statistics,
numeric_transform, LayerNorm / RMSNorm, on every CPU-reachable backend."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from _case import case, close, equal, raises

BACKENDS = ("cpu", "triton", "torch")


def _spec():
    from kernelflow import ops

    # 2 numeric columns (one with an indicator), a 3-category one-hot column, an ordinal column
    params = np.vstack([ops.transform_params(2, fill=[0.5, -1.0], lo=[-5, -np.inf], hi=[5, np.inf], shift=[1.0, 0.0],
                                             inv_scale=[0.5, 2.0]), [[0.0, 1.0], [0.0, 0.0]]])  # fn: -, log1p
    cats = [dict(off=3, width=3, mode="onehot", slots=[0, 1, 2]),
            dict(off=6, width=1, mode="ordinal", slots=[0, 1], unknown_value=-1.0)]
    return ops.TableSpec.build(7, params, [0, 1], [0], [2], cats)


def _inputs():
    x = torch.tensor([[1.0, np.nan], [np.nan, 3.0], [1e30, -np.inf], [-7.0, 1e-310]], dtype=torch.float64)
    c = torch.tensor([[0, 1], [2, 0], [-1, 5], [7, -3]], dtype=torch.int64)
    return x, c


# ---------------------------------------------------------------- table_transform: the spec
_CORRUPT = {
    "cat_k_huge": lambda s: dict(cat_k=torch.tensor([2**40, 2])),
    "cat_k_negative": lambda s: dict(cat_k=torch.tensor([-1, 2])),
    "cat_toff_past_table": lambda s: dict(cat_toff=torch.tensor([0, 4])),
    "cat_tab_slot_past_width": lambda s: dict(cat_tab=torch.tensor([0, 1, 9, 0, 1])),
    "cat_mode_2": lambda s: dict(cat_mode=torch.tensor([2, 1])),
    "cat_unk_past_width": lambda s: dict(cat_unk=torch.tensor([3, -1])),
    "cat_off_past_W": lambda s: dict(cat_off=torch.tensor([5, 6])),
    "num_out_past_W": lambda s: dict(num_out=torch.tensor([0, 70])),
    "ind_src_past_Fn": lambda s: dict(ind_src=torch.tensor([2])),
    "col_kind_mismatch": lambda s: dict(col_kind=torch.zeros(7, dtype=torch.int32)),
    "column_written_twice": lambda s: dict(num_out=torch.tensor([0, 0])),
    "fn_code_9": lambda s: dict(params=torch.cat([s.params[:6], torch.full((1, 2), 9.0), s.params[7:]])),
}
_BADTYPE = {
    "params_float32": lambda s: dict(params=s.params.float()),
    "cat_k_int32": lambda s: dict(cat_k=s.cat_k.int()),
    "col_kind_int64": lambda s: dict(col_kind=s.col_kind.long()),
    "cat_tab_float": lambda s: dict(cat_tab=s.cat_tab.double()),
    "num_out_list": lambda s: dict(num_out=[0, 1]),
}

for be in BACKENDS:
    for what, mut in _CORRUPT.items():
        @case(f"ops/table_spec_{what}[{be}]")
        def _(be=be, mut=mut):
            from kernelflow import ops

            s = _spec()
            x, c = _inputs()
            raises(ValueError, "TableSpec", ops.table_transform, x, c, dataclasses.replace(s, **mut(s)), backend=be)

    for what, mut in _BADTYPE.items():
        @case(f"ops/table_spec_{what}[{be}]")
        def _(be=be, mut=mut):
            from kernelflow import ops

            s = _spec()
            x, c = _inputs()
            raises(TypeError, r"TableSpec\.\w+ must be", ops.table_transform, x, c, dataclasses.replace(s, **mut(s)),
                   backend=be)

    @case(f"ops/table_matches_reference_hostile_values[{be}]")
    def _(be=be):
        from kernelflow import ops

        s = _spec()
        x, c = _inputs()
        for dt in (torch.float32, torch.float64):
            got = ops.table_transform(x.to(dt), c, s, out_dtype=dt, backend=be)
            ref = ops.table_transform_reference(x.to(dt), c, s, dt)
            close(got, ref, rtol=1e-6 if dt == torch.float32 else 1e-12, what=str(dt))

    @case(f"ops/table_int64_codes_past_int32_are_unknown[{be}]")
    def _(be=be):
        from kernelflow import ops

        s = _spec()
        x, _ = _inputs()
        c = torch.tensor([[2**32 + 1, 2**32], [2**31, -2**40], [2**63 - 1, 1], [1, 1]], dtype=torch.int64)
        got = ops.table_transform(x, c, s, backend=be)
        # every code outside [0, K) is unknown: one-hot zeros, ordinal unknown_value
        equal(got[:3, 3:6], torch.zeros(3, 3), "one-hot block")
        equal(got[:, 6], torch.tensor([-1.0, -1.0, 1.0, 1.0]), "ordinal column")
        equal(got[3, 3:6], torch.tensor([0.0, 1.0, 0.0]), "known code")

    @case(f"ops/table_small_int_codes[{be}]")
    def _(be=be):
        from kernelflow import ops

        s = _spec()
        x, c = _inputs()
        ref = ops.table_transform(x, c, s, backend="torch")
        for dt in (torch.int8, torch.int16, torch.uint8):
            cc = c.clamp(0, 100).to(dt)
            equal(ops.table_transform(x, cc, s, backend=be), ops.table_transform(x, cc.long(), s, backend="torch"), str(dt))
        assert ref.shape == (4, 7)

    @case(f"ops/table_codes_float_or_bool_refused[{be}]")
    def _(be=be):
        from kernelflow import ops

        s = _spec()
        x, c = _inputs()
        raises(TypeError, "codes must be an integer tensor", ops.table_transform, x, c.double(), s, backend=be)
        raises(TypeError, "codes must be an integer tensor", ops.table_transform, x, c > 0, s, backend=be)

    @case(f"ops/table_out_rows_overlap[{be}]")
    def _(be=be):
        from kernelflow import ops

        s = _spec()
        x, c = _inputs()
        buf = torch.zeros(4 * 7)
        out = buf.as_strided((4, 7), (3, 1))
        raises(ValueError, "out rows overlap", ops.table_transform, x, c, s, out=out, backend=be)
        raises(ValueError, "out rows overlap", ops.table_transform, x, c, s, out=torch.zeros(1, 7).expand(4, 7), backend=be)

    @case(f"ops/table_out_column_stride[{be}]")
    def _(be=be):
        from kernelflow import ops

        s = _spec()
        x, c = _inputs()
        raises(ValueError, "unit column stride", ops.table_transform, x, c, s, out=torch.zeros(7, 4).t(), backend=be)
        raises(ValueError, r"out must have shape \(4, 7\)", ops.table_transform, x, c, s, out=torch.zeros(4, 6), backend=be)
        raises(TypeError, "out must have dtype", ops.table_transform, x, c, s, out=torch.zeros(4, 7, dtype=torch.int32),
               backend=be)

    @case(f"ops/table_out_overlaps_input[{be}]")
    def _(be=be):
        from kernelflow import ops

        s = _spec()
        _, c = _inputs()
        buf = torch.zeros(4, 9, dtype=torch.float64)
        x = buf[:, :2]
        raises(ValueError, "out overlaps xnum", ops.table_transform, x, c, s, out=buf[:, 2:], backend=be)

    @case(f"ops/table_empty_rows[{be}]")
    def _(be=be):
        from kernelflow import ops

        s = _spec()
        got = ops.table_transform(torch.zeros(0, 2), torch.zeros(0, 2, dtype=torch.int64), s, backend=be)
        assert got.shape == (0, 7), got.shape


# ---------------------------------------------------------------- one-hot / ordinal outputs
def _onehot_layout():
    from kernelflow.ops.onehot import OneHotLayout

    return OneHotLayout.from_categories([np.array(["a", "b", "c"], dtype=object), np.array([1, 2])],
                                        [np.array([3, 2, 1]), np.array([1, 1])], handle_unknown="ignore")


def _ordinal_layout():
    from kernelflow.ops.onehot import OrdinalLayout

    return OrdinalLayout.from_categories([np.array(["a", "b", "c"], dtype=object), np.array([1, 2])],
                                         handle_unknown="use_encoded_value", unknown_value=-1.0)


for be in BACKENDS:
    for enc in ("one_hot", "ordinal_encode"):
        def _args(enc=enc):
            from kernelflow import ops

            lay = _onehot_layout() if enc == "one_hot" else _ordinal_layout()
            W = lay.width if enc == "one_hot" else lay.n_features
            return getattr(ops, enc), lay, W

        @case(f"ops/{enc}_out_stride0[{be}]")
        def _(be=be, _args=_args):
            f, lay, W = _args()
            codes = torch.tensor([[0, 1], [1, 0], [2, 1]], dtype=torch.int32)
            out = torch.zeros(1, W).expand(3, W)
            raises(ValueError, "out rows overlap", f, codes, lay, out=out, backend=be)

        @case(f"ops/{enc}_out_rows_overlap[{be}]")
        def _(be=be, _args=_args):
            f, lay, W = _args()
            codes = torch.tensor([[0, 1], [1, 0], [2, 1]], dtype=torch.int32)
            out = torch.zeros(3 * W).as_strided((3, W), (1, 1))
            raises(ValueError, "out rows overlap", f, codes, lay, out=out, backend=be)

        @case(f"ops/{enc}_out_overlaps_codes[{be}]")
        def _(be=be, _args=_args):
            f, lay, W = _args()
            buf = torch.zeros(3, W + 2, dtype=torch.float32)
            codes = buf[:, :2].view(torch.int32)
            raises(ValueError, "out overlaps codes", f, codes, lay, out=buf[:, 2:], backend=be)

        @case(f"ops/{enc}_codes_past_int32_unknown[{be}]")
        def _(be=be, _args=_args, enc=enc):
            from kernelflow import ops

            f, lay, W = _args()
            codes = torch.tensor([[2**32 + 1, 2**40], [1, 0], [-2**40, 1]], dtype=torch.int64)
            got = f(codes, lay, backend=be)
            ref = f(torch.tensor([[-1, -1], [1, 0], [-1, 1]]), lay, backend="torch")
            equal(got, ref, "codes beyond int32 are unknown")


# ---------------------------------------------------------------- column statistics (float64 accumulation)
for be in BACKENDS:

    @case(f"ops/column_stats_pm1e20_float32[{be}]")
    def _(be=be):
        from kernelflow import ops

        s = ops.column_stats(torch.tensor([[1e20], [-1e20]], dtype=torch.float32), backend=be)
        close(s[3], [2e40], rtol=1e-6, what="M2")

    @case(f"ops/column_stats_3e38_mean_float32[{be}]")
    def _(be=be):
        from kernelflow import ops

        s = ops.column_stats(torch.full((64, 1), 3e38, dtype=torch.float32), backend=be)
        close(s[2], [np.float64(np.float32(3e38))], rtol=1e-6, what="mean")

    @case(f"ops/column_stats_denormal_m2[{be}]")
    def _(be=be):
        from kernelflow import ops

        x = torch.tensor([[1e-40], [3e-40], [0.0]], dtype=torch.float32)
        ref = np.var(x.double().numpy()) * 3
        close(ops.column_stats(x, backend=be)[3], [ref], rtol=1e-6, what="M2 of denormals")

    @case(f"ops/column_stats_nan_inf_empty[{be}]")
    def _(be=be):
        from kernelflow import ops

        x = torch.tensor([[np.nan, 1.0, np.inf], [np.nan, 2.0, 1.0], [np.nan, np.nan, -np.inf]], dtype=torch.float64)
        s = ops.column_stats(x, backend=be)
        equal(s[0], [0, 2, 1], "count of finite values")
        equal(s[1], [3, 1, 0], "NaN count")
        close(s[2, 1], 1.5, what="mean")
        assert ops.column_stats(torch.zeros(0, 3), backend=be).shape == (6, 3)

    for odt in ("float32", "float64"):
        @case(f"ops/numeric_transform_param_precision_{odt}[{be}]")
        def _(be=be, odt=odt):
            from kernelflow import ops

            x = torch.tensor([[np.nan], [1e-30]], dtype=torch.float32)
            p = ops.transform_params(1, fill=1e300, inv_scale=1e-300)  # (1e300 - 0) * 1e-300 = 1
            close(ops.numeric_transform(x, p, odt, backend=be), [[1.0], [0.0]], rtol=1e-6, atol=1e-30)

    @case(f"ops/numeric_transform_out_overlaps_x[{be}]")
    def _(be=be):
        from kernelflow import ops

        buf = torch.arange(12, dtype=torch.float64).reshape(3, 4)
        p = ops.transform_params(3, shift=[1.0, 1.0, 1.0])
        raises(ValueError, "overlap", ops.numeric_transform, buf[:, :3], p, "float64", out=buf[:, 1:], backend=be)


# ---------------------------------------------------------------- LayerNorm / RMSNorm
for be in BACKENDS:
    @case(f"ops/layer_norm_large_mean_long_rows[{be}]", timeout=120)
    def _(be=be):
        from kernelflow.ops.norm import layer_norm

        g = torch.Generator().manual_seed(0)
        n = 2**18 if be == "triton" else 2**21  # the interpreter is slow; the C++ kernel gets the full width
        x = torch.randn(2, n, generator=g) + 1e4
        ref = torch.nn.functional.layer_norm(x.double(), (n,))
        # torch's own fp32 layer_norm is off by ~1e-3 here (the fp32 input's rounding): same bound
        close(layer_norm(x, (n,), backend=be), ref, atol=3e-3, what="LayerNorm")

    @case(f"ops/rms_norm_large_values_long_rows[{be}]", timeout=120)
    def _(be=be):
        from kernelflow.ops.norm import rms_norm

        g = torch.Generator().manual_seed(1)
        n = 2**18 if be == "triton" else 2**21
        x = torch.randn(2, n, generator=g) * 1e3 + 5e3
        ref = torch.nn.functional.rms_norm(x.double(), (n,), eps=torch.finfo(torch.float32).eps)
        close(rms_norm(x, (n,), backend=be), ref, atol=1e-5, what="RMSNorm")

    for fn in ("layer_norm", "rms_norm"):
        @case(f"ops/{fn}_hidden_size_0[{be}]")
        def _(be=be, fn=fn):
            from kernelflow.ops import norm

            x = torch.randn(3, 0, requires_grad=True)
            y = getattr(norm, fn)(x, (0,), backend=be)
            ref = getattr(torch.nn.functional, fn)(x, (0,))
            assert y.shape == ref.shape == (3, 0), (y.shape, ref.shape)
            y.sum().backward()
            assert x.grad is not None and x.grad.shape == (3, 0)

        @case(f"ops/{fn}_float64[{be}]")
        def _(be=be, fn=fn):
            from kernelflow.ops import norm

            g = torch.Generator().manual_seed(2)
            x = (torch.randn(4, 33, generator=g, dtype=torch.float64) * 1e6 + 1e9).requires_grad_()
            w = torch.randn(33, dtype=torch.float64, generator=g, requires_grad=True)
            y = getattr(norm, fn)(x, (33,), w, backend=be)
            ref = getattr(torch.nn.functional, fn)(x, (33,), w) if fn == "rms_norm" else \
                torch.nn.functional.layer_norm(x, (33,), w)
            assert y.dtype == torch.float64
            close(y, ref, rtol=1e-12, atol=1e-12)
            gy = torch.randn(4, 33, dtype=torch.float64, generator=g)
            gx, gw = torch.autograd.grad(y, (x, w), gy)
            rx, rw = torch.autograd.grad(ref, (x, w), gy)
            close(gx, rx, rtol=1e-9, atol=1e-18, what="dx")
            close(gw, rw, rtol=1e-9, atol=1e-12, what="dweight")

        @case(f"ops/{fn}_nan_inf_rows[{be}]")
        def _(be=be, fn=fn):
            from kernelflow.ops import norm

            x = torch.tensor([[1.0, np.nan, 2.0, 3.0], [np.inf, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]])
            y = getattr(norm, fn)(x, (4,), backend=be)
            ref = getattr(torch.nn.functional, fn)(x.double(), (4,)).float()
            assert torch.isnan(y[0]).all() and torch.isnan(y[1]).sum() >= torch.isnan(ref[1]).sum()
            close(y[2], ref[2], rtol=1e-5, atol=1e-6)

        @case(f"ops/{fn}_bad_eps[{be}]")
        def _(be=be, fn=fn):
            from kernelflow.ops import norm

            x = torch.randn(2, 4)
            for eps in (-1.0, float("nan"), float("inf"), "1e-5"):
                raises(ValueError, "eps must be", getattr(norm, fn), x, (4,), eps=eps, backend=be)

        @case(f"ops/{fn}_bad_dtype_and_shape[{be}]")
        def _(be=be, fn=fn):
            from kernelflow.ops import norm

            raises(TypeError, "x must be float32, float64", getattr(norm, fn), torch.ones(2, 4, dtype=torch.int64), (4,),
                   backend=be)
            raises(ValueError, "normalized_shape", getattr(norm, fn), torch.ones(2, 4), (5,), backend=be)
            raises(ValueError, "weight must have shape", getattr(norm, fn), torch.ones(2, 4), (4,), torch.ones(3),
                   backend=be)
            raises(TypeError, "x must be a torch.Tensor", getattr(norm, fn), [[1.0, 2.0]], (2,), backend=be)
