"""``export_onnx``: one ONNX graph for a fitted pipeline and the model after it.

The graph is traced by ``torch.onnx.export(dynamo=True)`` with the kernelflow translation table
(``kernelflow.deploy.onnx_ops``). Before tracing, a copy of the model is prepared for
deployment: every ``kernelflow.nn.Preprocess`` becomes its float32 standard-op form
(``GraphPreprocess``) and every ``Int8Linear`` its QuantizeLinear / DequantizeLinear form, so
the graph holds only ops TensorRT's ONNX parser supports, with float32 (or half) parameters.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from kernelflow._dtypes import LOW_FLOATS, as_dtype

INPUT_NAMES_PIPELINE = ("num", "cat", "passthrough")
INPUT_NAME_PLAIN = "input"
OUTPUT_NAME = "output"
DEFAULT_OPSET = 19  # QuantizeLinear / DequantizeLinear with the types TensorRT 10 fuses; TRT 10 parses 9..22
_TWO_GB = 2 * 1024 ** 3


class Pipeline(nn.Module):
    """preprocess (float32) -> cast to the model's dtype -> model -> float32 output."""

    def __init__(self, pre: nn.Module | None, model: nn.Module | None, dtype: torch.dtype) -> None:
        super().__init__()
        self.pre, self.model, self.dtype = pre, model, dtype

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        x = self.pre(*xs) if self.pre is not None else xs[0]
        if self.model is None:
            return x
        y = self.model(x.to(self.dtype))
        if isinstance(y, (tuple, list)):
            raise TypeError("the model must return one tensor (the `output` of the graph)")
        return y.to(torch.float32) if y.dtype != torch.float32 else y


def _check_dtype(dtype) -> torch.dtype:
    return as_dtype(dtype, LOW_FLOATS, "dtype")


def _check_opset(opset) -> int:
    if opset is None:
        return DEFAULT_OPSET
    if not isinstance(opset, int) or isinstance(opset, bool) or not 17 <= opset <= 23:
        raise ValueError(f"opset must be an int in [17, 23] (19 or more for int8 models), got {opset!r}")
    return opset


def prepare_for_export(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A copy of ``model`` on the CPU, in eval mode and ``dtype``, with every kernelflow module
    replaced by its export form (see the module docstring)."""
    from kernelflow.deploy.onnx_ops.int8 import QDQLinear
    from kernelflow.deploy.onnx_ops.preprocess import GraphPreprocess
    from kernelflow.nn.int8 import Int8Linear
    from kernelflow.nn.preprocess import Preprocess

    if isinstance(model, Preprocess):
        return GraphPreprocess(model)
    if isinstance(model, Int8Linear):
        return QDQLinear(model, dtype)
    m = copy.deepcopy(model).cpu().eval()
    for name, mod in list(m.named_modules()):
        if not name:
            continue
        new = None
        if isinstance(mod, Preprocess):
            new = GraphPreprocess(mod)
        elif isinstance(mod, Int8Linear):
            new = QDQLinear(mod, dtype)
        if new is not None:
            parent, _, child = name.rpartition(".")
            setattr(m.get_submodule(parent) if parent else m, child, new)
    if dtype != torch.float32:
        for mod in m.modules():
            if isinstance(mod, (GraphPreprocess, QDQLinear)):
                continue
            for k, p in list(mod.named_parameters(recurse=False)):
                if p.is_floating_point():
                    p.data = p.data.to(dtype)
            for k, b in list(mod.named_buffers(recurse=False)):
                if b is not None and b.is_floating_point():
                    setattr(mod, k, b.to(dtype))
    return m


def _infer_in_features(model: nn.Module) -> int:
    from kernelflow.nn.int8 import Int8Linear

    for mod in model.modules():
        if isinstance(mod, (nn.Linear, Int8Linear)):
            return int(mod.in_features)
        if isinstance(mod, (nn.LayerNorm, nn.RMSNorm)) and len(mod.normalized_shape) == 1:
            return int(mod.normalized_shape[0])
    raise ValueError("cannot tell the model's input width: pass example_input (a [N, features] tensor)")


def example_inputs(preprocessor=None, model: nn.Module | None = None, example_input=None, rows: int = 3):
    """Example tensors to trace with: (num, cat[, passthrough]) for a pipeline, else (input,)."""
    if preprocessor is not None:
        Fn, Fc, Fp = (len(preprocessor.numeric_columns_), len(preprocessor.categorical_columns_),
                      len(preprocessor.passthrough_columns_))
        g = torch.Generator().manual_seed(0)
        xs = [torch.randn(rows, Fn, generator=g), torch.zeros(rows, Fc, dtype=torch.int64)]
        if Fp:
            xs.append(torch.randn(rows, Fp, generator=g))
        return tuple(xs)
    if example_input is not None:
        if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
            raise TypeError("example_input must be a torch.Tensor [N, ...] with a batch dimension")
        return (example_input.detach().cpu().float(),)
    return (torch.randn(rows, _infer_in_features(model)),)


def input_names_for(preprocessor) -> list[str]:
    if preprocessor is None:
        return [INPUT_NAME_PLAIN]
    return list(INPUT_NAMES_PIPELINE[:3 if preprocessor.passthrough_columns_ else 2])


def export_onnx(model: nn.Module | None, path, *, preprocessor=None, opset: int | None = None,
                dtype="float32", example_input: torch.Tensor | None = None, check: bool = True) -> Path:
    """Write ``model`` (and the fitted ``preprocessor`` in front of it) as one ONNX graph.

    With a fitted ``kernelflow.Preprocessor`` the graph's inputs are ``num`` float32 [N, n_numeric]
    (NaN = missing), ``cat`` int64 [N, n_categorical] (``Preprocessor.encode_categories``; -1 =
    unknown) and, when the pipeline has passthrough columns, ``passthrough`` float32 [N, n_pass];
    without one it is ``input`` ([N, features] float32; ``example_input`` sets other shapes).
    The output is ``output`` float32 [N, ...]: what the model returns (logits for a classifier),
    or the preprocessed matrix when ``model`` is None. The batch dimension N is dynamic.
    ``dtype``: "float32", "float16" or "bfloat16" for the model part (preprocessing stays
    float32; the graph casts in between and casts the output back to float32).
    ``opset``: the default ai.onnx opset, 19 by default (int8 QDQ needs >= 19).
    Writes external data (``<name>.data``) when the model is over 2 GB. Returns the path.
    """
    import onnx

    from kernelflow.deploy.onnx_ops import onnx_translation_table

    dt = _check_dtype(dtype)
    op = _check_opset(opset)
    if model is None and preprocessor is None:
        raise ValueError("export_onnx needs a model, a preprocessor or both")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or None, got {type(model).__name__}")
    pre = None
    if preprocessor is not None:
        from kernelflow.preprocessing.preprocessor import Preprocessor

        if not isinstance(preprocessor, Preprocessor):
            raise TypeError(f"preprocessor must be a fitted kernelflow.Preprocessor, got {type(preprocessor).__name__}")
        if not hasattr(preprocessor, "n_features_out_"):
            raise ValueError("preprocessor is not fitted: call fit first")
        pre = prepare_for_export(preprocessor.to_module())
    m = prepare_for_export(model, dt) if model is not None else None
    if op < 19 and m is not None and _has_int8(m):
        raise ValueError(f"int8 models need opset >= 19 (QuantizeLinear / DequantizeLinear types), got {op}")
    wrapper = Pipeline(pre, m, dt).eval()
    args = example_inputs(preprocessor, model, example_input)
    names = input_names_for(preprocessor)
    N = torch.export.Dim("N", min=1, max=2 ** 31 - 1)
    dyn = tuple({0: N} for _ in args)
    path = Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")  # the exporter's notes on tracing and torch.export
        prog = torch.onnx.export(wrapper, args, dynamo=True, input_names=names, output_names=[OUTPUT_NAME],
                                 dynamic_shapes={"xs": dyn}, opset_version=op,
                                 custom_translation_table=onnx_translation_table(), optimize=True,
                                 verbose=False, report=False)
    _unique_names(prog.model.graph)
    size = sum(t.const_value.nbytes for t in prog.model.graph.initializers.values() if t.const_value is not None)
    big = size > _TWO_GB - (64 << 20)
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
    prog.save(str(path), external_data=big)
    _trim_unused_outputs(path, big)
    if check:
        onnx.checker.check_model(str(path), full_check=True)
    return path


def _trim_unused_outputs(path: Path, external: bool) -> None:
    """Drop the unused trailing optional outputs of LayerNormalization (its mean / inverse std):
    TensorRT's parser takes LayerNormalization with its first output only."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    used = {i for n in m.graph.node for i in n.input} | {o.name for o in m.graph.output}
    changed = False
    for n in m.graph.node:
        if n.op_type == "LayerNormalization" and len(n.output) > 1:
            keep = list(n.output)
            while len(keep) > 1 and (keep[-1] not in used or keep[-1] == ""):
                keep.pop()
            if len(keep) != len(n.output):
                del n.output[:]
                n.output.extend(keep)
                changed = True
    if changed:
        # external data stays where it is: only the graph (without tensors loaded) is rewritten
        onnx.save(m, str(path)) if not external else onnx.save(m, str(path), save_as_external_data=False)


def _unique_names(graph) -> None:
    """Rename inner values that share a name with a graph input or output (the exporter names
    values after the torch ops that made them: ``torch.cat`` gives a value called ``cat``)."""
    io_values = list(graph.inputs) + list(graph.outputs)
    taken = {v.name for v in io_values}
    keep = {id(v) for v in io_values}
    for node in graph.all_nodes() if hasattr(graph, "all_nodes") else graph:
        for v in node.outputs:
            if v.name in taken and id(v) not in keep:
                i = 1
                while f"{v.name}_{i}" in taken:
                    i += 1
                v.name = f"{v.name}_{i}"
                taken.add(v.name)
    for name, init in list(graph.initializers.items()):
        if name in {v.name for v in graph.inputs}:
            raise ValueError(f"an initializer is named like the graph input {name!r}")


@contextlib.contextmanager
def _quiet_exporter():
    # the exporter logs a warning per torchvision op it cannot find, and progress lines
    loggers = [logging.getLogger(n) for n in ("torch.onnx._internal.exporter._registration", "torch.onnx")]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, lv in zip(loggers, old):
            lg.setLevel(lv)


def _has_int8(m: nn.Module) -> bool:
    from kernelflow.deploy.onnx_ops.int8 import QDQLinear

    return any(isinstance(x, QDQLinear) for x in m.modules())
