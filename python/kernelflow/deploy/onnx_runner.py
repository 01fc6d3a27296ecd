"""``OnnxRunner``: an exported graph in ONNX Runtime, fed with ``num`` / ``cat`` (/ ``passthrough``)
tensors or, with the saved preprocessor, straight from a DataFrame.

Graph optimization: the default level is ORT_ENABLE_ALL for float graphs. For graphs holding
QuantizeLinear / DequantizeLinear it is ORT_ENABLE_BASIC: at the higher levels ONNX Runtime
fuses QDQ + MatMul into its own int8 kernels (QGemm / MatMulIntegerToFloat), which on CPUs
without AVX-512 VNNI quantize activations to uint8 with saturation, so results depend on the
machine; BASIC keeps the graph's own Q/DQ arithmetic and gives the same numbers everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

LEVELS = ("disable", "basic", "extended", "all")


def _level(name: str):
    import onnxruntime as ort

    return {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[name]


def graph_op_types(path) -> set[str]:
    """The op types of an ONNX file's main graph and its functions (external data not loaded)."""
    import onnx

    m = onnx.load(os.fspath(path), load_external_data=False)
    ops = {n.op_type for n in m.graph.node}
    for f in m.functions:
        ops |= {n.op_type for n in f.node}
    return ops


def _as_numpy(x: Any, dtype, arg: str) -> np.ndarray:
    if x is None:
        raise TypeError(f"{arg} is required by this graph")
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{arg} must be 2-D [N, columns], got shape {a.shape}")
    if dtype == np.int64 and a.dtype.kind not in "iu":
        raise TypeError(f"{arg} must hold integer category codes, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


class OnnxRunner:
    """An ONNX Runtime session over an exported graph (a file, or a bundle directory).

    path: ``model.onnx`` or a bundle directory (``save_bundle``): then ``predict(df)`` uses the
    bundle's preprocessor. providers: ONNX Runtime execution providers (default: CPU).
    optimization: "disable" | "basic" | "extended" | "all" | None (the safe choice, see the
    module docstring). preprocessor: a fitted Preprocessor for ``predict`` when path is a file.
    """

    def __init__(self, path, providers=None, *, optimization: str | None = None, preprocessor=None,
                 intra_op_threads: int | None = None) -> None:
        import onnxruntime as ort

        p = Path(os.fspath(path))
        if p.is_dir():
            from kernelflow.deploy.bundle import load_bundle

            b = load_bundle(p)
            p, preprocessor = b.onnx_path, preprocessor or b.preprocessor
        if not p.is_file():
            raise ValueError(f"path {str(p)!r} is neither an ONNX file nor a bundle directory")
        if optimization is not None and optimization not in LEVELS:
            raise ValueError(f"optimization must be one of {LEVELS} or None, got {optimization!r}")
        self.path = p
        self.op_types = graph_op_types(p)
        self.quantized = bool({"QuantizeLinear", "DequantizeLinear"} & self.op_types)
        self.optimization = optimization or ("basic" if self.quantized else "all")
        so = ort.SessionOptions()
        so.graph_optimization_level = _level(self.optimization)
        if intra_op_threads is not None:
            so.intra_op_num_threads = int(intra_op_threads)
        self.providers = list(providers) if providers is not None else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(p), so, providers=self.providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.preprocessor = preprocessor

    def run(self, num, cat=None, passthrough=None) -> np.ndarray:
        """The graph's ``output`` [N, ...] float32 for num [N, n_numeric] float (NaN = missing),
        cat [N, n_categorical] integer codes (-1 = unknown) and passthrough [N, n_pass] when the
        graph takes it. A graph with one input (a model without preprocessor) takes it as ``num``."""
        names = self.input_names
        if len(names) == 1:  # a model graph ("input", or whatever a plain torch.onnx.export named it)
            if cat is not None or passthrough is not None:
                raise ValueError(f"this graph takes one input ({names[0]!r}): pass it alone")
            feeds = {names[0]: _as_numpy(num, np.float32, names[0])}
        else:
            feeds = {"num": _as_numpy(num, np.float32, "num"), "cat": _as_numpy(cat, np.int64, "cat")}
            if "passthrough" in names:
                feeds["passthrough"] = _as_numpy(passthrough, np.float32, "passthrough")
            elif passthrough is not None:
                raise ValueError("this graph has no passthrough input")
            n = {a.shape[0] for a in feeds.values()}
            if len(n) != 1:
                raise ValueError(f"inputs disagree on the number of rows: { {k: v.shape for k, v in feeds.items()} }")
        return self.session.run(self.output_names[:1], feeds)[0]

    def predict(self, df) -> np.ndarray:
        """Encode a table with the saved preprocessor (categories on the host) and run the graph."""
        if self.preprocessor is None:
            raise ValueError("predict needs the preprocessor: open a bundle directory or pass preprocessor=")
        inp = self.preprocessor.inputs(df)
        if getattr(self.preprocessor, "handle_unknown", None) == "error" and inp.cat.numel():
            bad = (inp.cat < 0).any(0)
            if bool(bad.any()):  # the graph cannot raise: it would encode them as all-zero rows
                names = [c for c, b in zip(self.preprocessor.categorical_columns_, bad.tolist()) if b]
                raise ValueError(f"Found unknown categories in columns {names} during transform")
        return self.run(inp.num, inp.cat, inp.passthrough)

    def __repr__(self) -> str:
        return (f"OnnxRunner({str(self.path)!r}, inputs={self.input_names}, outputs={self.output_names}, "
                f"optimization={self.optimization!r}, providers={self.providers})")
