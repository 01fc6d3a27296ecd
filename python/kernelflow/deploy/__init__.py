"""Deployment: ONNX export of a fitted pipeline and its model (standard ops, int8 as QDQ),
portable bundles, ONNX Runtime and TensorRT runners, TensorRT engine builds.

Importing this module adds kernelflow's ONNX translations to torch.onnx's exporter, so a plain
``torch.onnx.export(model, args, dynamo=True)`` of a module holding kernelflow layers works.
"""

from __future__ import annotations

from kernelflow.deploy.bundle import Bundle, load_bundle, read_manifest, save_bundle, verify_bundle
from kernelflow.deploy.onnx_export import export_onnx, prepare_for_export
from kernelflow.deploy.onnx_ops import onnx_translation_table, register as register_onnx_translations
from kernelflow.deploy.onnx_runner import OnnxRunner, graph_op_types
from kernelflow.deploy.tensorrt import TensorRTRunner, build_engine, tensorrt_version

register_onnx_translations()

# Serving names load on first use: the Triton client library is the [serve] extra's.
_SERVING = {"write_model_repository": "triton_repo", "TritonServer": "server", "find_server": "server",
            "ServerError": "server", "TritonClient": "triton_client", "TritonClientError": "triton_client"}


def __getattr__(name: str):
    if name in _SERVING:
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module(f"kernelflow.deploy.{_SERVING[name]}"), name)
    raise AttributeError(f"module 'kernelflow.deploy' has no attribute {name!r}")


__all__ = ["Bundle", "OnnxRunner", "export_onnx", "graph_op_types", "load_bundle", "onnx_translation_table",
           "prepare_for_export", "read_manifest", "register_onnx_translations", "save_bundle", "verify_bundle",
           "TensorRTRunner", "build_engine", "tensorrt_version", *_SERVING]
