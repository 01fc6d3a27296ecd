"""What an ONNX file holds: inputs, outputs, op types (with counts), parameter sizes and dtypes,
opset; and ``compose_onnx``, which puts an exported preprocessing graph in front of a model
that is already an ONNX file."""

from __future__ import annotations

import collections
import os
from pathlib import Path


def describe_onnx(path) -> dict:
    """A JSON-able summary of an ONNX file (external data is not read, only its size)."""
    import onnx

    p = Path(os.fspath(path))
    m = onnx.load(str(p), load_external_data=False)

    def io(v):
        t = v.type.tensor_type
        return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                "shape": [d.dim_param or int(d.dim_value) for d in t.shape.dim]}

    ops = collections.Counter(n.op_type for n in m.graph.node)
    by_dtype: dict[str, int] = collections.Counter()
    n_params = 0
    for t in m.graph.initializer:
        k = 1
        for d in t.dims:
            k *= int(d)
        n_params += k
        by_dtype[onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name] += k
    data = p.with_name(p.name + ".data")
    return {"path": str(p), "bytes": p.stat().st_size + (data.stat().st_size if data.exists() else 0),
            "external_data": data.exists(),
            "opset": {o.domain or "ai.onnx": o.version for o in m.opset_import},
            "inputs": [io(v) for v in m.graph.input], "outputs": [io(v) for v in m.graph.output],
            "nodes": len(m.graph.node), "op_types": dict(sorted(ops.items())),
            "parameters": n_params, "parameters_by_dtype": dict(by_dtype)}


def compose_onnx(pre_path, model_path, out_path, opset: int | None = None) -> Path:
    """One graph: the preprocessing graph ``pre_path`` (``export_onnx(None, ..., preprocessor=)``)
    feeding the single input of the ONNX model ``model_path``; the result's output is ``output``.
    Both are brought to one opset (``opset``, default the preprocessing graph's)."""
    import onnx
    from onnx import compose, version_converter

    pre = onnx.load(os.fspath(pre_path))
    model = onnx.load(os.fspath(model_path))
    main = lambda m: next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)  # noqa: E731
    target = opset or main(pre)
    if main(pre) != target:
        pre = version_converter.convert_version(pre, target)
    if main(model) != target:
        model = version_converter.convert_version(model, target)
    if len(model.graph.input) - len(model.graph.initializer) > 1 and len(model.graph.input) != 1:
        names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        if len(names) != 1:
            raise ValueError(f"the model graph must take one input (the preprocessed matrix), it takes {names}")
    model_in = next(i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    if len(model.graph.output) != 1:
        raise ValueError(f"the model graph must have one output, it has {len(model.graph.output)}")
    pre.ir_version = model.ir_version = max(pre.ir_version, model.ir_version)
    feats = "features"  # the preprocessed matrix, an inner value of the composed graph
    for n in pre.graph.node:
        n.output[:] = [feats if o == "output" else o for o in n.output]
        n.input[:] = [feats if i == "output" else i for i in n.input]
    pre.graph.output[0].name = feats
    merged = compose.merge_models(pre, model, io_map=[(feats, model_in)], prefix2="model/")
    out_name = merged.graph.output[0].name
    for n in merged.graph.node:
        n.output[:] = ["output" if o == out_name else o for o in n.output]
        n.input[:] = ["output" if i == out_name else i for i in n.input]
    merged.graph.output[0].name = "output"
    onnx.checker.check_model(merged, full_check=True)
    out_path = Path(os.fspath(out_path))
    onnx.save(merged, str(out_path))
    return out_path
