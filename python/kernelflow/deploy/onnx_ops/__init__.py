"""ONNX translations of kernelflow's custom ops (onnxscript, standard ai.onnx ops only), one file
per op family, and the export forms of the modules whose best graph is not the sum of their ops
(``preprocess.GraphPreprocess``, ``int8.QDQLinear``).

``onnx_translation_table()`` is the ``custom_translation_table`` for
``torch.onnx.export(..., dynamo=True)``; ``register()`` adds the same translations to the
exporter's default registry, so a plain ``torch.onnx.export`` of a module holding kernelflow
layers works too (``import kernelflow.deploy`` calls it).
"""

from __future__ import annotations

import logging
from typing import Callable

_log = logging.getLogger(__name__)
_registered = False


def onnx_translation_table() -> dict[Callable, Callable]:
    """{torch.ops.kernelflow.<op>.default: translation} for every op of an inference graph."""
    import torch

    import kernelflow.ops  # noqa: F401  (defines the ops)
    from kernelflow.deploy.onnx_ops import norm, quant, transform

    k = torch.ops.kernelflow
    table = {
        k.numeric_transform.default: transform.numeric_transform,
        k.layer_norm_fwd.default: norm.layer_norm_fwd,
        k.rms_norm_fwd.default: norm.rms_norm_fwd,
        k.quantize_static.default: quant.quantize_static,
        k.quantize_rows.default: quant.quantize_rows,
        k.dequantize_rows.default: quant.dequantize_rows,
        k.int8_gemm.default: quant.int8_gemm,
        k.weight_only_gemm.default: quant.weight_only_gemm,
    }
    if hasattr(k, "int8_linear"):  # the fused Int8Linear op (quantize + GEMM in one) where it exists
        table[k.int8_linear.default] = quant.int8_linear
    return table


def register() -> bool:
    """Add the translations to the registry every ``torch.onnx.export(dynamo=True)`` starts from.

    That registry is built from the exporter's list of torchlib functions (a private part of
    torch.onnx); where this torch has no such list, returns False and
    ``custom_translation_table=onnx_translation_table()`` remains the way."""
    global _registered
    if _registered:
        return True
    try:
        from torch.onnx._internal.exporter import _registration
        from torch.onnx._internal.exporter._torchlib import _torchlib_registry
    except ImportError as e:  # pragma: no cover - another torch layout
        _log.info("torch.onnx has no torchlib registry here (%s): pass custom_translation_table", e)
        return False
    for target, fn in onnx_translation_table().items():
        _torchlib_registry._registry.append(
            _registration.OnnxDecompMeta(onnx_function=fn, fx_target=target, signature=None, is_custom=True))
    _registered = True
    return True
