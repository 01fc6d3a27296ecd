"""Where every output column of a fitted Preprocessor goes: [numeric | indicators | categorical
blocks | passthrough], scikit-learn's ColumnTransformer names, and the fused kernel's
``TableSpec`` for that layout."""

from __future__ import annotations

import numpy as np

from kernelflow import ops


def set_layout(pre) -> None:
    """cat_offsets_, _pass_offset, n_features_out_ and the output names from the fitted columns."""
    Fn = len(pre.numeric_columns_)
    names = [f"num__{c}" for c in pre.numeric_columns_]
    ind = [f"ind__missingindicator_{c}" for c in pre.indicator_columns_]
    offs, w = [], Fn + len(ind)
    cat_names = []
    for p in pre._cat_plans:
        offs.append(w)
        w += p.width
        cat_names += [f"cat__{n}" for n in p.names]
    pre.cat_offsets_ = np.asarray(offs, dtype=np.int64)
    pre._pass_offset = w
    w += len(pre.passthrough_columns_)
    pre.n_features_out_ = w
    pre._feature_names_out = np.asarray(
        names + ind + cat_names + [f"remainder__{c}" for c in pre.passthrough_columns_], dtype=object)


def table_spec(pre) -> "ops.TableSpec":
    """The fused kernel's layout for the fitted plan, on the CPU: the numeric columns' [8, Fn]
    parameters and the passthrough columns' identity, indicator sources, category slot tables."""
    Fn, Fp = len(pre.numeric_columns_), len(pre.passthrough_columns_)
    fn = ops.FN_CODES[pre.nonlinear]
    num = np.vstack([ops.transform_params(Fn, fill=pre.fill_, lo=pre.clip_lo_, hi=pre.clip_hi_, shift=pre.shift_,
                                          inv_scale=pre.inv_scale_, offset=pre.offset_), np.full((1, Fn), float(fn)),
                     np.asarray(pre.lambdas_, dtype=np.float64).reshape(1, Fn)])
    passthrough = np.vstack([ops.transform_params(Fp), np.zeros((2, Fp))])  # identity: NaN stays NaN
    params = np.hstack([num, passthrough])
    num_out = list(range(Fn)) + list(range(pre._pass_offset, pre._pass_offset + Fp))
    pos = {c: j for j, c in enumerate(pre.numeric_columns_)}
    ind_src = [pos[c] for c in pre.indicator_columns_]
    ind_out = list(range(Fn, Fn + len(ind_src)))
    cats = []
    for j, p in enumerate(pre._cat_plans):
        unknown_slot = p.infrequent_slot if pre.handle_unknown == "infrequent_if_exist" else -1
        cats.append(dict(off=int(pre.cat_offsets_[j]), width=p.width, mode=pre.encode, slots=p.slots,
                         unknown_slot=unknown_slot, unknown_value=float(pre.unknown_value)))
    return ops.TableSpec.build(pre.n_features_out_, params, num_out, ind_src, ind_out, cats)
