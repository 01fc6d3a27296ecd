"""Triton python-backend model: the encode step of a kernelflow ensemble (copied as model.py).

Needs only numpy in the server's Python (no kernelflow, no torch): the encoding is
``kernelflow_encode.py`` and the drift statistics ``kernelflow_drift_stats.py``, both copied
next to this file. Each request is encoded on its own (a bad request fails alone); the drift
statistics of every served row accumulate in this instance and are exported as Prometheus
gauges on Triton's metrics endpoint, labelled by pipeline, version and column.
"""

import json
import math
import os

import numpy as np
import triton_python_backend_utils as pb_utils

import kernelflow_drift_stats as drift
import kernelflow_encode as enc

_GAUGES = {
    "psi": "population stability index of the served column against the training distribution",
    "mean_shift": "served mean minus training mean, in training standard deviations",
    "missing_rate": "share of served rows with a missing value in the column",
    "unknown_rate": "share of served rows with a category not seen in fit",
}


class TritonPythonModel:
    def initialize(self, args):
        here = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(here, "encoder.json"), encoding="utf-8") as f:
            spec = json.load(f)
        self.encoder = enc.Encoder(spec)
        self.reference = spec.get("reference")
        self.state = drift.DriftState.for_reference(self.reference) if self.reference else None
        self.metrics = {}
        if self.state is not None:
            labels = {"pipeline": spec["pipeline"], "version": args["model_version"]}
            fams = {k: pb_utils.MetricFamily(name=f"kernelflow_drift_{k}", description=d, kind=pb_utils.MetricFamily.GAUGE)
                    for k, d in _GAUGES.items()}
            rows = pb_utils.MetricFamily(name="kernelflow_drift_rows", description="rows served since the model loaded",
                                         kind=pb_utils.MetricFamily.GAUGE)
            self.rows_metric = rows.Metric(labels=labels)
            self.families = list(fams.values()) + [rows]  # kept alive: a family's metrics die with it
            # a gauge per column and measure that applies to it (no mean of a category, no unknown number)
            kinds = [(c["name"], ("psi", "mean_shift", "missing_rate")) for c in self.reference["numeric"]]
            kinds += [(c["name"], ("psi", "missing_rate", "unknown_rate")) for c in self.reference["categorical"]]
            for col, measures in kinds:
                self.metrics[col] = {k: fams[k].Metric(labels={**labels, "column": col}) for k in measures}

    def _publish(self):
        self.rows_metric.set(float(self.state.rows))
        for m in self.state.measures(self.reference):
            for k, metric in self.metrics[m["column"]].items():
                v = m[k]
                metric.set(float(v) if v is not None and not math.isnan(v) else math.nan)

    def execute(self, requests):
        responses = []
        served = False
        for request in requests:
            try:
                cols = {}
                for name, _ in self.encoder.columns():
                    t = pb_utils.get_input_tensor_by_name(request, name)
                    cols[name] = None if t is None else t.as_numpy()
                blocks, num_all, cat_missing = self.encoder.encode(cols)
                out = [pb_utils.Tensor(b, np.ascontiguousarray(a)) for b, a in blocks.items()]
                responses.append(pb_utils.InferenceResponse(output_tensors=out))
                if self.state is not None:
                    cat = blocks.get("cat")
                    if cat is None:
                        cat = np.zeros((num_all.shape[0], 0), np.int64)
                    self.state.update(num_all, cat, cat_missing)
                    served = True
            except enc.EncodeError as e:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(e))))
            except Exception as e:  # never take the server down; say what failed
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"encode failed: {type(e).__name__}: {e}")))
        if served:
            self._publish()
        return responses

    def finalize(self):
        self.metrics.clear()
