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

__all__ = ["Bundle", "OnnxRunner", "export_onnx", "graph_op_types", "load_bundle", "onnx_translation_table",
           "prepare_for_export", "read_manifest", "register_onnx_translations", "save_bundle", "verify_bundle",
           "TensorRTRunner", "build_engine", "tensorrt_version"]
