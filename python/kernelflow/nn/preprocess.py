"""kernelflow.nn.Preprocess: a fitted Preprocessor as an nn.Module.

Buffers hold every fitted parameter, so ``.to(device)``, ``state_dict`` and torch.compile work
as for any module. Input: xnum [N, Fn] float (NaN = missing) and codes [N, Fc] integer category
indices (``Preprocessor.encode_categories``; -1 = unknown). Output: [N, W] in the fitted dtype.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kernelflow import ops
from kernelflow._dtypes import as_dtype

_NONLINEAR = ops.FN_CODES


class Preprocess(nn.Module):
    def __init__(self, n_numeric: int, n_out: int, table_size: int, n_cat: int, n_ind: int, n_pass: int = 0,
                 nonlinear: int = 0, ordinal: bool = False, handle_unknown_error: bool = False,
                 unknown_value: float = -1.0, dtype: torch.dtype = torch.float32, backend: str = "auto"):
        super().__init__()
        self.n_numeric, self.n_out, self.n_ind, self.n_pass = n_numeric, n_out, n_ind, n_pass
        self.nonlinear, self.ordinal, self.handle_unknown_error = nonlinear, ordinal, handle_unknown_error
        self.unknown_value, self.out_dtype, self.backend = float(unknown_value), dtype, backend
        self.register_buffer("num_params", torch.zeros(6, n_numeric, dtype=torch.float64))  # fill, lo, hi, shift, inv, offset
        self.register_buffer("lambdas", torch.zeros(n_numeric, dtype=torch.float64))  # power-transform lambdas
        self.register_buffer("indicator_index", torch.zeros(n_ind, dtype=torch.int64))  # numeric column of each indicator
        self.register_buffer("slot_table", torch.zeros(table_size, dtype=torch.int64))  # code -> slot, per column blocks
        self.register_buffer("table_base", torch.zeros(n_cat, dtype=torch.int64))  # start of each column's block
        self.register_buffer("cat_offset", torch.zeros(n_cat, dtype=torch.int64))  # first output column of each feature
        self.register_buffer("unknown_slot", torch.zeros(n_cat, dtype=torch.int64))  # slot for unknown codes (-1: none)

    @classmethod
    def from_preprocessor(cls, p) -> "Preprocess":
        plans = p._cat_plans
        m = cls(len(p.numeric_columns_), p.n_features_out_, sum(len(q.slots) for q in plans), len(plans),
                len(p.indicator_columns_), len(p.passthrough_columns_), _NONLINEAR[p.nonlinear], p.encode == "ordinal",
                p.handle_unknown == "error", float(p.unknown_value),
                as_dtype(p.dtype), p.backend)
        with torch.no_grad():
            F = len(p.numeric_columns_)
            m.num_params.copy_(torch.from_numpy(ops.transform_params(
                F, fill=p.fill_, lo=p.clip_lo_, hi=p.clip_hi_, shift=p.shift_, inv_scale=p.inv_scale_, offset=p.offset_)))
            m.lambdas.copy_(torch.from_numpy(np.asarray(p.lambdas_, dtype=np.float64)))
            m.indicator_index.copy_(torch.as_tensor([p.numeric_columns_.index(c) for c in p.indicator_columns_], dtype=torch.int64))
            if plans:
                m.slot_table.copy_(torch.from_numpy(np.concatenate([q.slots for q in plans]).astype(np.int64)))
                m.table_base.copy_(torch.as_tensor(np.cumsum([0] + [len(q.slots) for q in plans[:-1]]), dtype=torch.int64))
                m.cat_offset.copy_(torch.from_numpy(p.cat_offsets_.astype(np.int64)))
                unk = [q.infrequent_slot if p.handle_unknown == "infrequent_if_exist" else -1 for q in plans]
                m.unknown_slot.copy_(torch.as_tensor(unk, dtype=torch.int64))
        return m

    def forward(self, xnum: torch.Tensor, codes: torch.Tensor, passthrough: torch.Tensor | None = None) -> torch.Tensor:
        """xnum [N, Fn] float32/float64; codes [N, Fc] integer; passthrough [N, Fp] or None -> [N, W]."""
        N, Fn = xnum.shape[0], self.n_numeric
        p = self.num_params
        if self.nonlinear:  # impute + clip, the nonlinear function, then scale
            v = ops.numeric_transform(xnum, torch.stack([p[0], p[1], p[2], torch.zeros_like(p[0]),
                                                         torch.ones_like(p[0]), torch.zeros_like(p[0])]),
                                      torch.float64, backend=self.backend)
            v = ops.nonlinear_reference(v, torch.full_like(self.lambdas, self.nonlinear, dtype=torch.int64), self.lambdas)
            num = ops.numeric_transform(v, torch.stack([torch.full_like(p[0], float("nan")),
                                                        torch.full_like(p[0], -float("inf")),
                                                        torch.full_like(p[0], float("inf")), p[3], p[4], p[5]]),
                                        self.out_dtype, backend=self.backend)
        else:
            num = ops.numeric_transform(xnum, p, self.out_dtype, backend=self.backend)
        parts = [num]
        if self.n_ind:
            parts.append(torch.isnan(xnum.index_select(1, self.indicator_index)).to(self.out_dtype))
        Fc = self.cat_offset.shape[0]
        if Fc:
            c = codes.to(torch.int64)
            # K of each column from the table layout: codes outside [0, K) are unknown, as in the ops
            ends = torch.cat([self.table_base[1:], self.table_base.new_full((1,), self.slot_table.shape[0])])
            unknown = (c < 0) | (c >= ends - self.table_base)
            c = torch.where(unknown, 0, c)
            slots = self.slot_table[(self.table_base + c).clamp_max(max(self.slot_table.shape[0] - 1, 0))]
            slots = torch.where(unknown, self.unknown_slot.expand_as(slots), slots)
            if self.ordinal:
                parts.append(torch.where(unknown, torch.full_like(c, 0).to(self.out_dtype) + self.unknown_value,
                                         c.to(self.out_dtype)))
            else:
                first = int(Fn + self.n_ind)
                w_cat = self.n_out - first - self.n_pass
                # slots < 0 go to a scratch column past the end, dropped below: static shapes for compile
                col = torch.where(slots >= 0, self.cat_offset - first + slots, torch.full_like(slots, w_cat))
                onehot = torch.zeros(N, w_cat + 1, dtype=self.out_dtype, device=xnum.device)
                onehot.scatter_(1, col, torch.ones_like(col, dtype=self.out_dtype))
                parts.append(onehot[:, :w_cat])
        if self.n_pass:
            if passthrough is None:
                raise ValueError(f"this pipeline has {self.n_pass} passthrough columns: pass them as `passthrough`")
            parts.append(passthrough.to(self.out_dtype))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
