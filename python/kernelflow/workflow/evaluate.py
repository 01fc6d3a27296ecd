"""Evaluation of every stage on the test split: the task's metrics (kernelflow.train.metrics, fp64
on the host), latency at batch 1 and throughput at a large batch, parameters and size."""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import torch

from kernelflow.train import metrics as M

CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
GREATER_IS_BETTER = {"accuracy": True, "f1": True, "roc_auc": True, "log_loss": False,
                     "rmse": False, "mae": False, "r2": True}


def primary_metric(task: str) -> str:
    return "accuracy" if task == "classification" else "rmse"


def probabilities(out: torch.Tensor, n_classes: int) -> np.ndarray:
    """[N, C] class probabilities (float64) from one logit per row (binary) or C logits."""
    o = out.detach().double().cpu()
    if o.dim() == 2 and o.shape[1] > 1:
        return torch.softmax(o, 1).numpy()
    p1 = torch.sigmoid(o.reshape(-1)).numpy()
    return np.stack([1 - p1, p1], 1)


def scores(task: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The task's metrics. Classification: ``y`` [N] class indices, ``pred`` [N, C] probabilities
    (F1 of class 1 for two classes, macro F1 otherwise; one-vs-rest macro ROC-AUC; log loss with
    probabilities clipped to [eps, 1 - eps], eps of float64). Regression: ``pred`` [N] values."""
    yt = torch.as_tensor(np.asarray(y))
    if task == "classification":
        p = np.asarray(pred, dtype=np.float64)
        labels = torch.as_tensor(p.argmax(1))
        C = p.shape[1]
        out = {"accuracy": M.accuracy(yt, labels),
               "f1": M.f1(yt, labels, average="binary" if C == 2 else "macro")}
        try:
            present = np.unique(np.asarray(y)).size
            out["roc_auc"] = (M.roc_auc(yt, torch.as_tensor(p[:, 1] if C == 2 else p))
                              if present == C else float("nan"))
        except ValueError:
            out["roc_auc"] = float("nan")
        eps = np.finfo(np.float64).eps
        pt = np.clip(p[np.arange(len(p)), np.asarray(y, dtype=np.int64)], eps, 1 - eps)
        out["log_loss"] = float(-np.mean(np.log(pt)))
        return out
    pr = torch.as_tensor(np.asarray(pred, dtype=np.float64).reshape(-1))
    yt = yt.double()
    return {"rmse": math.sqrt(M.mse(yt, pr)), "mae": M.mae(yt, pr), "r2": M.r2(yt, pr)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], repeats: int, device: torch.device, warmup: int = 2) -> float:
    """Median wall seconds of ``fn()`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def speed(fn_rows: Callable[[int], Callable[[], Any]], latency_batch: int, throughput_batch: int, repeats: int,
          device: torch.device) -> dict[str, float]:
    """Latency (ms, median) at ``latency_batch`` rows and throughput (rows/s) at ``throughput_batch``.
    ``fn_rows(n)`` returns a zero-argument call that predicts n rows (inputs already prepared)."""
    lat = time_call(fn_rows(latency_batch), repeats, device)
    big = fn_rows(throughput_batch)
    thr = time_call(big, max(3, repeats // 10), device, warmup=1)
    return {"latency_ms": lat * 1e3, "latency_batch": latency_batch,
            "throughput_rows_s": throughput_batch / thr, "throughput_batch": throughput_batch}


@torch.inference_mode()
def predict_torch(model: torch.nn.Module, blocks: tuple, batch: int = 65536) -> torch.Tensor:
    """Model outputs [N, out] (float32, on the model's device) for input blocks, ``batch`` rows at a time."""
    model.eval()
    n = next(b.shape[0] for b in blocks if b is not None)
    outs = []
    for i in range(0, n, batch):
        outs.append(model(*(None if b is None else b[i:i + batch] for b in blocks)).float())
    return torch.cat(outs)
