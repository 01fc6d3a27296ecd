"""The stages of ``kernelflow run``, each a function of the run's context ``Ctx``.

load -> split -> preprocess -> [tune] -> teacher -> student (distilled; and the same student on
labels alone) -> quantize (static w8a8) -> evaluate -> baselines -> export (bundle, ONNX,
parity, TensorRT) -> repository (Triton) -> [serve]. Data is moved to the run's device once,
after preprocessing, and stays there for every training, tuning and evaluation step.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from kernelflow.workflow import evaluate as E
from kernelflow.workflow.config import ModelConfig, WorkflowConfig
from kernelflow.workflow.models import RegressionDistillationLoss, TabularModel, mlp, n_parameters, out_features, state_bytes


@dataclass
class Ctx:
    """Everything a stage reads or adds; the report is built from it."""

    cfg: WorkflowConfig
    device: torch.device
    run_dir: Any = None
    progress: Callable[[str, int], Callable[[int], None]] | None = None  # (stage, total) -> advance(n)
    table: Any = None
    split: Any = None
    pre: Any = None
    n_classes: int = 0
    data: dict = field(default_factory=dict)  # device tensors: X_train, y_train, X_val, ..., test blocks
    models: dict = field(default_factory=dict)  # stage name -> nn.Module on the preprocessed matrix
    histories: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)  # stage name -> evaluation row
    baselines: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # per-stage details for the report

    def advance(self, stage: str, total: int) -> Callable[[int], None]:
        if self.progress is None:
            return lambda n=1: None
        return self.progress(stage, total)


class Skipped(Exception):
    """A stage that could not run here; the message is the reason, reported as 'skipped: <reason>'."""


# --------------------------------------------------------------------------------------- helpers


def _frame(ctx: Ctx, rows: np.ndarray):
    return ctx.table.X.iloc[rows]


def _opt_factory(mc: ModelConfig):
    return lambda params: torch.optim.AdamW(params, lr=mc.lr, weight_decay=mc.weight_decay)


def _metric_name(ctx: Ctx) -> str:
    if ctx.table.task == "regression":
        return "mse"
    return "accuracy"


def _build(ctx: Ctx, mc: ModelConfig, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    W = ctx.pre.n_features_out_
    return mlp(W, list(mc.hidden), out_features(ctx.table.task, ctx.n_classes), mc.dropout, mc.norm).to(ctx.device)


def _epoch_cb(advance: Callable[[int], None]):
    def cb(hist, model):
        advance(1)
        return False
    return cb


def train_model(ctx: Ctx, mc: ModelConfig, seed: int, stage: str, train=None, val=None, callbacks=(),
                epochs: int | None = None) -> tuple[nn.Module, Any]:
    """A fresh MLP trained with kernelflow.train.fit on the device-resident matrices."""
    from kernelflow.train import fit

    d = ctx.data
    train = train or (d["X_train"], d["y_train"])
    val = val or (d["X_val"], d["y_val"])
    net = _build(ctx, mc, seed)
    ep = epochs or mc.epochs
    adv = ctx.advance(stage, ep)
    hist = fit(net, train, val, optimizer=_opt_factory(mc), epochs=ep, batch_size=mc.batch_size,
               metric=_metric_name(ctx), patience=mc.patience, seed=seed, progress=False, amp=mc.amp,
               device=ctx.device, callbacks=[_epoch_cb(adv), *callbacks])
    return net.eval(), hist


def distill_model(ctx: Ctx, teacher: nn.Module, sc, seed: int, stage: str, callbacks=(),
                  epochs: int | None = None, temperature: float | None = None) -> tuple[nn.Module, Any]:
    """A fresh student distilled from the frozen teacher with Distiller.fit."""
    from kernelflow.distill import DistillationLoss, Distiller

    d = ctx.data
    student = _build(ctx, sc, seed)
    if ctx.table.task == "classification":
        loss = DistillationLoss(temperature=temperature or sc.temperature, alpha=sc.alpha)
    else:
        loss = RegressionDistillationLoss(alpha=sc.alpha)
    dist = Distiller(teacher, student, loss=loss,
                     optimizer=torch.optim.AdamW(student.parameters(), lr=sc.lr, weight_decay=sc.weight_decay))
    ep = epochs or sc.epochs
    adv = ctx.advance(stage, ep)
    hist = dist.fit((d["X_train"], d["y_train"]), (d["X_val"], d["y_val"]), epochs=ep, batch_size=sc.batch_size,
                    metric=_metric_name(ctx), patience=sc.patience, seed=seed, progress=False, amp=sc.amp,
                    device=ctx.device, callbacks=[_epoch_cb(adv), *callbacks])
    return student.eval(), hist


# ---------------------------------------------------------------------------------------- stages


def stage_split(ctx: Ctx) -> dict:
    from kernelflow.workflow import data as D

    ctx.split = D.split(ctx.table, ctx.cfg)
    s = ctx.split
    out = {"train_rows": len(s.train), "val_rows": len(s.val), "test_rows": len(s.test),
           "stratified": ctx.table.task == "classification" and ctx.cfg.split.stratify, "seed": ctx.cfg.seed}
    if ctx.table.task == "classification":
        import pandas as pd

        counts = pd.Series(ctx.table.y[s.test]).value_counts()
        out["class_counts_test"] = {str(c): int(n) for c, n in counts.items()}
    return out


def stage_preprocess(ctx: Ctx) -> dict:
    """Fit the fused Preprocessor on the training rows; encode the labels; move everything to the
    device once. Also times scikit-learn's equivalent ColumnTransformer on the same rows and
    checks the two outputs agree."""
    import kernelflow
    from kernelflow.train.data import as_labels

    cfg, s, dev = ctx.cfg, ctx.split, ctx.device
    opts = dict(cfg.preprocess)
    pre = kernelflow.Preprocessor(**opts, device=dev if dev.type == "cuda" else None)
    # a column with no value in the training rows carries nothing to learn or impute from: it is
    # left out (as scikit-learn's SimpleImputer drops empty features) and reported
    empty = [c for c in ctx.table.X.columns if not ctx.table.X[c].iloc[s.train].notna().any()]
    if empty:
        ctx.table.X = ctx.table.X.drop(columns=empty)
    Xtr, Xva, Xte = _frame(ctx, s.train), _frame(ctx, s.val), _frame(ctx, s.test)
    t0 = time.perf_counter()
    pre.fit(Xtr)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mtr = pre.transform(Xtr)
    transform_s = time.perf_counter() - t0
    ctx.pre = pre

    def dev_t(m):
        t = m if isinstance(m, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(m))
        return t.to(dev)

    d = ctx.data
    d["X_train"], d["X_val"], d["X_test"] = dev_t(mtr), dev_t(pre.transform(Xva)), dev_t(pre.transform(Xte))
    # the raw blocks the served model takes, for end-to-end evaluation
    d["blocks_test"] = tuple(None if b is None else b.to(dev) for b in pre.inputs(Xte))
    t = ctx.table
    if t.task == "classification":
        ctx.n_classes = len(t.classes)
        for k, rows in (("train", s.train), ("val", s.val), ("test", s.test)):
            codes, _ = as_labels(t.y[rows], f"y_{k}", t.classes)
            d[f"y_{k}"] = codes.to(dev)
    else:
        # networks train on standardized targets (fp64 statistics of the training rows); the
        # served and exported models end in TargetScale, so they predict in the target's units
        mean, std = float(np.mean(t.y[s.train])), float(np.std(t.y[s.train]))
        std = std if std > 0 else 1.0
        ctx.extra["target_scale"] = {"mean": mean, "std": std}
        for k, rows in (("train", s.train), ("val", s.val)):
            d[f"y_{k}"] = torch.from_numpy(((t.y[rows] - mean) / std).astype(np.float32)).to(dev)
        d["y_test"] = torch.from_numpy(t.y[s.test].astype(np.float32)).to(dev)  # metrics in the target's units
    out = {"columns_numeric": len(pre.numeric_columns_), "columns_categorical": len(pre.categorical_columns_),
           "columns_passthrough": len(pre.passthrough_columns_), "features_out": int(pre.n_features_out_),
           "fit_s": fit_s, "transform_s": transform_s, "options": opts, "device": str(dev),
           "dropped_empty_columns": [str(c) for c in empty]}
    # scikit-learn's ColumnTransformer for the same policy on the same (first sklearn_rows) training
    # rows, both timed here on the CPU, and the two outputs compared
    try:
        sk = pre.to_sklearn()
        sub = Xtr.iloc[: ctx.cfg.evaluate.sklearn_rows]
        t0 = time.perf_counter()
        ref = sk.fit_transform(sub)
        sk_s = time.perf_counter() - t0
        cpu_pre = kernelflow.Preprocessor(**opts)
        t0 = time.perf_counter()
        got = cpu_pre.fit(sub).transform(sub)
        kf_s = time.perf_counter() - t0
        got = got.cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
        ref = np.asarray(ref, dtype=np.float64)
        diff = float(np.nanmax(np.abs(ref - got) / np.maximum(np.abs(ref), 1.0))) if ref.size else 0.0
        out.update(comparison_rows=len(sub), sklearn_fit_transform_s=sk_s, kernelflow_cpu_fit_transform_s=kf_s,
                   speedup_vs_sklearn=sk_s / max(kf_s, 1e-12), max_rel_diff_vs_sklearn=diff)
    except NotImplementedError as e:
        out["sklearn_comparison"] = f"skipped: {e}"
    return out


def stage_teacher(ctx: Ctx) -> dict:
    cfg = ctx.cfg
    net, hist = train_model(ctx, cfg.teacher, cfg.seed, "teacher")
    ctx.models["teacher"], ctx.histories["teacher"] = net, hist
    out = {"epochs_run": hist.epochs_run, "best_epoch": hist.best_epoch, "val_metric": hist.metric,
           "best_val": hist.best_metric, "hidden": list(cfg.teacher.hidden), "parameters": n_parameters(net)}
    if cfg.split.folds >= 2:
        out["cross_validation"] = _cross_validate(ctx)
    return out


def _cross_validate(ctx: Ctx) -> dict:
    """k-fold CV of the teacher on train + validation rows (test rows untouched): mean and std of
    the fold metric, each fold scored on its held-out part."""
    from kernelflow.workflow import data as D

    cfg, d = ctx.cfg, ctx.data
    X = torch.cat([d["X_train"], d["X_val"]])
    y = torch.cat([d["y_train"], d["y_val"]])
    rows = np.arange(X.shape[0])
    # fold over positions of the concatenation, labels from the table in the same order
    tbl_rows = np.concatenate([ctx.split.train, ctx.split.val])
    sub = copy.copy(ctx.table)
    sub.y = ctx.table.y[tbl_rows]
    vals = []
    for k, (a, b) in enumerate(D.folds(sub, rows, cfg.split.folds, cfg)):
        ia, ib = torch.as_tensor(a, device=X.device), torch.as_tensor(b, device=X.device)
        net, _ = train_model(ctx, cfg.teacher, cfg.seed + 100 + k, f"cv fold {k + 1}",
                             train=(X[ia], y[ia]), val=(X[ib], y[ib]))
        out = E.predict_torch(net, (X[ib],))
        yb = y[ib].cpu().numpy()
        if ctx.table.task == "classification":
            pred = E.probabilities(out, ctx.n_classes)
        else:  # back to the target's units
            ts = ctx.extra["target_scale"]
            pred = out.reshape(-1).cpu().numpy() * ts["std"] + ts["mean"]
            yb = yb * ts["std"] + ts["mean"]
        vals.append(E.scores(ctx.table.task, yb, pred)[E.primary_metric(ctx.table.task)])
    return {"folds": cfg.split.folds, "metric": E.primary_metric(ctx.table.task), "values": vals,
            "mean": float(np.mean(vals)), "std": float(np.std(vals))}


def stage_student(ctx: Ctx) -> dict:
    cfg = ctx.cfg
    sc = cfg.student
    student, hist = distill_model(ctx, ctx.models["teacher"], sc, cfg.seed + 1, "student (distilled)")
    ctx.models["student"], ctx.histories["student"] = student, hist
    out = {"epochs_run": hist.epochs_run, "best_val": hist.best_metric, "hidden": list(sc.hidden),
           "temperature": sc.temperature, "alpha": sc.alpha, "parameters": n_parameters(student)}
    if sc.compare_alone:
        alone, h2 = train_model(ctx, sc, cfg.seed + 1, "student (labels only)")
        ctx.models["student_alone"], ctx.histories["student_alone"] = alone, h2
        out["alone_best_val"] = h2.best_metric
    return out


def stage_quantize(ctx: Ctx) -> dict:
    """Static w8a8: per-layer activation scales from training rows, so the graph exports as
    QuantizeLinear / DequantizeLinear pairs with constant scales."""
    import kernelflow

    qc = ctx.cfg.quantize
    X = ctx.data["X_train"][: qc.calibration_rows]
    batches = [X[i:i + 1024] for i in range(0, X.shape[0], 1024)]
    q, rep = kernelflow.quantize(ctx.models["student"], mode="w8a8", calibration=batches, static=True,
                                 method=qc.method, percentile=qc.percentile)
    ctx.models["student_int8"] = q.eval()
    return {"mode": "w8a8 static", "calibration_rows": int(X.shape[0]), "method": qc.method,
            "layers": [{"name": l.name, "snr_db": l.snr_db, "act_scale": l.act_scale} for l in rep.layers],
            "min_snr_db": rep.min_snr_db}


STAGE_LABELS = {"teacher": "teacher", "student": "student (distilled)", "student_alone": "student (labels only)",
                "student_int8": "student int8", "onnx": "exported graph (ONNX Runtime)"}


def deployable(ctx: Ctx, name: str) -> nn.Module:
    """The network as it is deployed: with TargetScale at the end for regression."""
    net = ctx.models[name]
    ts = ctx.extra.get("target_scale")
    if ts is None:
        return net
    from kernelflow.workflow.models import TargetScale

    dev = next(iter(net.parameters()), torch.empty(0, device=ctx.device)).device
    return nn.Sequential(net, TargetScale(ts["mean"], ts["std"]).to(dev)).eval()


def served_model(ctx: Ctx, name: str) -> TabularModel:
    return TabularModel(ctx.pre.to_module().to(ctx.device), deployable(ctx, name)).eval()


def stage_evaluate(ctx: Ctx) -> dict:
    """Every model end to end on the test split's raw blocks (the fitted Preprocess module in
    front), with latency at batch 1 and throughput at a large batch."""
    ec, task = ctx.cfg.evaluate, ctx.table.task
    blocks, y = ctx.data["blocks_test"], ctx.data["y_test"].cpu().numpy()
    n = blocks[0].shape[0]
    for name in ("teacher", "student", "student_alone", "student_int8"):
        if name not in ctx.models:
            continue
        m = served_model(ctx, name)
        out = E.predict_torch(m, blocks)
        pred = E.probabilities(out, ctx.n_classes) if task == "classification" else out.reshape(-1).cpu().numpy()
        h = ctx.histories.get(name)
        row = {"metrics": E.scores(task, y, pred), "parameters": n_parameters(ctx.models[name]),
               "fit_s": h.elapsed_seconds if h is not None else None,
               "size_bytes": state_bytes(ctx.models[name]), "device": str(ctx.device)}

        def rows(k, m=m):
            k = min(k, n)
            sub = tuple(None if b is None else b[:k].contiguous() for b in blocks)
            return lambda: _infer(m, sub)
        row.update(E.speed(rows, ec.latency_batch, min(ec.throughput_batch, n), ec.repeats, ctx.device))
        ctx.results[name] = row
    return {k: {"metrics": v["metrics"], "latency_ms": v["latency_ms"]} for k, v in ctx.results.items()}


@torch.inference_mode()
def _infer(m: nn.Module, blocks: tuple) -> torch.Tensor:
    return m(*blocks)


def stage_baselines(ctx: Ctx) -> dict:
    from kernelflow.workflow.baselines import run_baseline

    cfg, s, t = ctx.cfg, ctx.split, ctx.table
    ytr = ctx.data["y_train"].cpu().numpy()
    ts = ctx.extra.get("target_scale")
    if ts is not None:  # the baselines fit the raw targets, as a practitioner would
        ytr = t.y[s.train]
    yte = ctx.data["y_test"].cpu().numpy()
    Xtr, Xte = _frame(ctx, s.train), _frame(ctx, s.test)
    adv = ctx.advance("baselines", len(cfg.baselines.models))
    for name in cfg.baselines.models:
        ctx.baselines[name] = run_baseline(name, t.task, Xtr, ytr, Xte, yte, ctx.n_classes, cfg.seed,
                                           cfg.baselines.max_iter, cfg.preprocess, cfg.evaluate.repeats)
        adv(1)
    return {k: {"metrics": v["metrics"], "fit_s": v["fit_s"]} for k, v in ctx.baselines.items()}
