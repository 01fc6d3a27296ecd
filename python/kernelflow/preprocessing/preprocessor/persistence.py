"""The fitted state of a Preprocessor as ``kernelflow.save`` writes it (arrays as safetensors,
the rest JSON; never pickle), and its checked reading back. The format is that of every earlier
version: files they wrote load unchanged."""

from __future__ import annotations

import numpy as np

from kernelflow.preprocessing.preprocessor.categories import CatPlan, json_value

ARRAYS = ("fill_", "clip_lo_", "clip_hi_", "shift_", "inv_scale_", "offset_", "lambdas_", "cat_offsets_")
LISTS = ("columns_in_", "numeric_columns_", "categorical_columns_", "passthrough_columns_", "indicator_columns_")
# everything kernelflow.load may set (io refuses any other name)
STATE_KEYS = frozenset(ARRAYS + LISTS + ("n_features_in_", "n_features_out_", "_named_", "_pass_offset",
                                         "_feature_names_out", "feature_names_in_", "_cat_plans"))


def get_state(pre) -> dict:
    st = {k: getattr(pre, k) for k in ARRAYS + LISTS}
    st.update(n_features_in_=pre.n_features_in_, n_features_out_=pre.n_features_out_, _named_=pre._named_,
              _pass_offset=pre._pass_offset, _feature_names_out=pre._feature_names_out)
    if hasattr(pre, "feature_names_in_"):
        st["feature_names_in_"] = pre.feature_names_in_
    st["_cat_plans"] = [
        {"name": p.name, "categories": [json_value(v) for v in p.categories], "slots": p.slots.tolist(),
         "width": p.width, "names": list(p.names), "infrequent_slot": p.infrequent_slot,
         "infrequent": None if p.infrequent is None else [json_value(v) for v in p.infrequent],
         "fill": json_value(p.fill), "counts": None if p.counts is None else [int(n) for n in p.counts]}
        for p in pre._cat_plans]
    return st


def set_state(pre, st: dict) -> None:
    for k in ARRAYS:
        v = np.asarray(st[k])
        if v.dtype.kind not in "iuf":
            raise ValueError(f"{k} must be numeric")
        setattr(pre, k, v)
    for k in LISTS:
        v = st[k]
        if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
            raise ValueError(f"{k} must be a list of column names")
        setattr(pre, k, v)
    for k in ("n_features_in_", "n_features_out_", "_pass_offset"):
        if not isinstance(st[k], int) or st[k] < 0:
            raise ValueError(f"{k} must be a non-negative int")
        setattr(pre, k, st[k])
    pre._named_ = bool(st["_named_"])
    pre._feature_names_out = np.asarray(st["_feature_names_out"], dtype=object)
    if "feature_names_in_" in st:
        pre.feature_names_in_ = np.asarray(st["feature_names_in_"], dtype=object)
    Fn = len(pre.numeric_columns_)
    if any(np.asarray(getattr(pre, k)).shape != (Fn,) for k in ARRAYS[:-1]):
        raise ValueError("numeric parameters do not match the numeric columns")
    plans = []
    for d in st["_cat_plans"]:
        cats = np.asarray(d["categories"], dtype=object)
        slots = np.asarray(d["slots"], dtype=np.int64)
        limit = len(cats) if pre.encode == "ordinal" else d["width"]
        if slots.shape != cats.shape or (slots.size and (slots.max() >= max(limit, 1) or slots.min() < -1)):
            raise ValueError(f"category table of column {d['name']!r} is inconsistent")
        plans.append(CatPlan(str(d["name"]), cats, slots, int(d["width"]), [str(n) for n in d["names"]],
                             None if d["infrequent"] is None else np.asarray(d["infrequent"], dtype=object),
                             int(d["infrequent_slot"]), d["fill"],
                             None if d.get("counts") is None else np.asarray(d["counts"], dtype=np.int64)))
    pre._cat_plans = plans
    if len(plans) != len(pre.categorical_columns_) or pre.cat_offsets_.shape != (len(plans),):
        raise ValueError("categorical plans do not match the categorical columns")
    if len(pre._feature_names_out) != pre.n_features_out_:
        raise ValueError("feature names do not match the output width")
