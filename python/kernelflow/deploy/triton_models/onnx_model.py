"""Triton python-backend model: the graph in ONNX Runtime (copied as model.py), for servers
without the onnxruntime backend (nvidia-pytriton's build has the python backend only).

The requests of one dynamic batch are concatenated and run as one ONNX Runtime call, then split
back: the batching the server does is what makes the model step cheap per row.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        here = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(here, "onnx_model.json"), encoding="utf-8") as f:
            spec = json.load(f)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                         "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[spec.get("optimization", "all")]
        if spec.get("intra_op_threads"):
            opts.intra_op_num_threads = int(spec["intra_op_threads"])
        self.session = ort.InferenceSession(os.path.join(here, "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = list(spec["outputs"])

    def execute(self, requests):
        try:
            feeds_per_request = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs] for r in requests]
            sizes = [f[0].shape[0] for f in feeds_per_request]
            feeds = {n: np.concatenate([f[i] for f in feeds_per_request]) for i, n in enumerate(self.inputs)}
            results = self.session.run(self.outputs, feeds)
        except Exception as e:  # an error response per request, never a crash
            err = pb_utils.TritonError(f"model failed: {type(e).__name__}: {e}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=err) for _ in requests]
        responses, start = [], 0
        for n in sizes:
            out = [pb_utils.Tensor(name, np.ascontiguousarray(r[start:start + n])) for name, r in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(output_tensors=out))
            start += n
        return responses
