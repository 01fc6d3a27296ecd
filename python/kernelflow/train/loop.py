"""``fit``: a lean training loop for tabular PyTorch models.

The whole data set lives on the training device; every epoch draws one permutation there and
takes batches with ``index_select`` (or plain slices without shuffling), so there is no
DataLoader, no worker process and no host-to-device copy per batch. Under ``torch.distributed``
every rank draws the same permutation (same seed) and trains on its own stride of it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kernelflow.train import metrics as M
from kernelflow.train.data import as_inputs, as_labels, n_rows
from kernelflow.train.history import History

__all__ = ["fit"]

_LOSSES = ("auto", "cross_entropy", "bce", "mse", "l1")
_CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
_REGRESSION_METRICS = ("mse", "mae", "r2")

Callback = Callable[[History, nn.Module], "bool | None"]


# ---------------------------------------------------------------------------------------------
# argument handling


def _data_pair(data: Any, name: str, preprocessor: Any, classes: Sequence[Any] | None
               ) -> tuple[tuple[torch.Tensor | None, ...], tuple[torch.Tensor, ...], list | None]:
    """(input blocks, (targets, *per-row side targets), classes when labels were encoded)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be an (X, y) pair, got {type(data).__name__}"
                        + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""))
    xs = as_inputs(data[0], f"{name}[0] (X)", preprocessor)
    y_raw, extra = data[1], ()
    if isinstance(y_raw, tuple):  # (targets, *side): per-row tensors that batches slice alongside
        if not y_raw:
            raise ValueError(f"{name}[1] is an empty tuple")
        extra = tuple(as_inputs(t, f"{name}[1][{i + 1}]")[0] for i, t in enumerate(y_raw[1:]))
        y_raw = y_raw[0]
    y, cls = as_labels(y_raw, f"{name}[1] (y)", classes)
    if y.dim() == 0:
        raise ValueError(f"{name}: y needs a leading sample dimension, got a scalar")
    for i, b in enumerate(xs):
        if b is not None and b.shape[0] != y.shape[0]:
            what = "X" if len(xs) == 1 else f"X[{i}]"
            raise ValueError(f"{name}: {what} and y have different numbers of rows: {b.shape[0]} != {y.shape[0]}")
        if b is not None and b.is_complex():
            raise TypeError(f"{name}: complex data is not supported")
    for i, t in enumerate(extra):
        if t.shape[0] != y.shape[0]:
            raise ValueError(f"{name}: y[{i + 1}] has {t.shape[0]} rows, y has {y.shape[0]}")
    if y.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one row")
    if y.dtype == torch.bool:
        y = y.long()
    if y.is_complex():
        raise TypeError(f"{name}: complex data is not supported")
    return xs, (y,) + extra, cls


def _rows(xs: tuple, i: int, j: int) -> tuple:
    return tuple(None if b is None else b[i:j] for b in xs)


def _take(xs: tuple, idx: torch.Tensor) -> tuple:
    return tuple(None if b is None else b.index_select(0, idx) for b in xs)


def _target(ys: tuple):
    """What the loss gets: the targets, or the (targets, *side) tuple."""
    return ys[0] if len(ys) == 1 else ys


def _check_int(v: Any, name: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device, torch.get_default_dtype()
    return torch.device("cpu"), torch.get_default_dtype()


def _dist_info() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# ---------------------------------------------------------------------------------------------
# loss and metric


def _make_loss(loss: Any, task: str, n_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if callable(loss):
        return loss
    name = loss
    if name == "auto":
        name = "cross_entropy" if task == "classification" else "mse"

    def to_target_shape(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # (n, 1) outputs against (n,) targets: never let broadcasting build an (n, n) loss.
        if out.shape != y.shape:
            if out.numel() != y.numel():
                raise ValueError(f"model output of shape {tuple(out.shape)} does not match targets of shape "
                                 f"{tuple(y.shape)}")
            out = out.reshape(y.shape)
        return out

    def classification(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = out.float()  # loss accumulates in fp32 under bf16 autocast
        if out.dim() == 2 and out.shape[1] > 1 and name != "bce":
            if out.shape[1] < n_classes:
                raise ValueError(f"model outputs {out.shape[1]} logits but the labels go up to {n_classes - 1}")
            return F.cross_entropy(out, y)
        if n_classes > 2:
            raise ValueError(f"model outputs one logit per row but the labels hold {n_classes} classes; "
                             f"output ({out.shape[0]}, {n_classes}) logits")
        return F.binary_cross_entropy_with_logits(out.reshape(-1), y.to(out.dtype))

    def regression(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = to_target_shape(out.float(), y)
        y = y.to(out.dtype)
        return F.mse_loss(out, y) if name == "mse" else F.l1_loss(out, y)

    if name in ("cross_entropy", "bce"):
        if task != "classification":
            raise ValueError(f"loss={loss!r} needs integer class labels, but y is floating point (regression)")
        return classification
    if name in ("mse", "l1"):
        if task != "regression":
            raise ValueError(f"loss={loss!r} needs floating point targets, but y holds integer labels")
        return regression
    raise ValueError(f"loss must be a callable or one of {_LOSSES}, got {loss!r}")


def _make_metric(metric: Any, task: str, n_classes: int) -> tuple[str, Callable[[torch.Tensor, torch.Tensor], Any]]:
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    name = metric
    if name == "auto":
        name = "accuracy" if task == "classification" else "mse"
    if task == "classification" and name in _REGRESSION_METRICS or task == "regression" and name in _CLASSIFICATION_METRICS:
        raise ValueError(f"metric={metric!r} does not apply to {task} (y dtype decides the task)")
    average = "binary" if n_classes <= 2 else "macro"

    def scores(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels, scores): binary score = P(class 1), multiclass = class probabilities."""
        if out.dim() == 2 and out.shape[1] > 1:
            p = out.softmax(1)
            return out.argmax(1), (p[:, 1] if out.shape[1] == 2 else p)
        out = out.reshape(-1)
        return (out > 0).long(), torch.sigmoid(out)

    def fn(y: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if name == "accuracy":
            return M.accuracy_tensor(y, scores(out)[0])
        if name in ("precision", "recall", "f1"):
            i = ("precision", "recall", "f1").index(name)
            return M.precision_recall_f1_tensor(y, scores(out)[0], average=average)[i]
        if name == "roc_auc":
            return M.roc_auc_tensor(y, scores(out)[1])
        return {"mse": M.mse_tensor, "mae": M.mae_tensor, "r2": M.r2_tensor}[name](y, out)

    if name not in M.GREATER_IS_BETTER:
        raise ValueError(f"metric must be a callable or one of {('auto',) + tuple(M.GREATER_IS_BETTER)}, got {metric!r}")
    return name, fn


# ---------------------------------------------------------------------------------------------
# the loop


def fit(
    model: nn.Module,
    train: Sequence[Any],
    val: Sequence[Any] | None = None,
    *,
    loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "auto",
    optimizer: torch.optim.Optimizer | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    epochs: int = 10,
    batch_size: int = 1024,
    shuffle: bool = True,
    device: str | torch.device | None = None,
    amp: str | None = None,
    metric: str | Callable[[torch.Tensor, torch.Tensor], Any] = "auto",
    mode: str | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    seed: int = 0,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    grad_clip: float | None = None,
    eval_batch_size: int | None = None,
    preprocessor: Any = None,
    classes: Sequence[Any] | None = None,
) -> History:
    """Train ``model`` in place on ``train = (X, y)`` and return a :class:`History`.

    Inputs ``X``: a tensor / array (``model(X)``); a tuple of blocks such as ``(num, cat)`` or
    ``(num, cat, passthrough)`` from ``Preprocessor.inputs`` (``model(num, cat, ...)``, e.g. an
    end-to-end ``nn.Module`` holding ``pre.to_module()``); or a DataFrame (pandas, polars,
    pyarrow) with a fitted ``preprocessor``, transformed once by the fused kernel
    (``model(preprocessor.transform(df))``). Labels: numbers, or strings / categoricals, which
    are encoded as indices into ``classes`` (default: the sorted unique training labels; a
    validation label outside them is an error) and recorded in ``History.classes``. ``y`` may
    be a tuple ``(targets, *side)`` of per-row tensors sliced with each batch; a callable
    ``loss`` then receives the tuple (``Distiller.fit`` passes the teacher's logits that way).

    Task: integer (or bool) ``y`` means classification (``loss="auto"`` is cross-entropy on
    (n, c) logits, or binary cross-entropy when the model outputs one logit per row), floating
    ``y`` means regression (mean squared error). ``loss`` may also be "cross_entropy", "bce",
    "mse", "l1" or ``callable(output, y) -> scalar`` (a mean over the batch).

    ``optimizer``: an optimizer over the model's parameters, a factory ``f(params)``, or None
    for ``AdamW(lr=1e-3)``. ``device``: where model and data go (default: where the model's
    parameters are). Floating ``X`` and regression ``y`` take the model's parameter dtype.
    ``amp="bf16"`` runs forward passes under bfloat16 autocast (CPU or CUDA); losses stay fp32.

    Validation (``val = (X, y)``) runs after each epoch: the loss and ``metric`` ("accuracy",
    "precision", "recall", "f1", "roc_auc" on classification (f1 & co binary for two classes,
    macro otherwise; roc_auc on class probabilities), "mse", "mae", "r2" on regression,
    "auto" = accuracy / mse, or ``callable(y_true, raw_output) -> float`` with ``mode`` given).
    ``mode`` ("max"/"min") is inferred for named metrics. With ``patience=k``, training stops
    after k epochs without an improvement larger than ``min_delta`` and the best epoch's weights
    are restored. Each of ``callbacks`` is called as ``cb(history, model)`` after every epoch;
    returning True stops training. ``grad_clip`` clips the global gradient norm.

    Reproducible: the same ``seed``, initial weights and data give the same weights (exactly,
    on CPU). The global RNG state is left as it was (dropout draws from a forked, seeded one).

    Distributed: when ``torch.distributed`` is initialised the model is wrapped in
    DistributedDataParallel (unless it already is), each rank trains on its stride of the
    shared per-epoch permutation (``batch_size`` is per rank; the permutation is padded by
    wrapping so every rank runs the same number of steps), validation is split across ranks
    and gathered so every rank sees the same loss and metric, and early stopping and callback
    stops are agreed across ranks. Only rank 0 shows the progress bar.
    """
    t_start = time.perf_counter()
    # ---- arguments
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    epochs = _check_int(epochs, "epochs", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    eval_batch_size = batch_size * 4 if eval_batch_size is None else _check_int(eval_batch_size, "eval_batch_size", 1)
    seed = _check_int(seed, "seed", 0)
    if patience is not None:
        patience = _check_int(patience, "patience", 1)
        if val is None:
            raise ValueError("patience needs validation data: pass val=(X, y)")
    if not isinstance(min_delta, numbers.Real) or isinstance(min_delta, bool) or min_delta < 0:
        raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
    if grad_clip is not None and (isinstance(grad_clip, bool) or not isinstance(grad_clip, numbers.Real)
                                  or not grad_clip > 0):
        raise ValueError(f"grad_clip must be a positive number or None, got {grad_clip!r}")
    if amp not in (None, "bf16"):
        raise ValueError(f"amp must be 'bf16' or None, got {amp!r}")
    if not isinstance(loss, str) and not callable(loss):
        raise TypeError(f"loss must be a string or a callable, got {type(loss).__name__}")
    if not isinstance(metric, str) and not callable(metric):
        raise TypeError(f"metric must be a string or a callable, got {type(metric).__name__}")
    if mode is not None and mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max', 'min' or None, got {mode!r}")
    callbacks = list(callbacks) if callbacks is not None else []
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be callable, got {type(cb).__name__}")

    from torch.nn.parallel import DistributedDataParallel as DDP

    rank, world = _dist_info()
    core = model.module if isinstance(model, DDP) else model
    model_device, param_dtype = _model_device_dtype(core)
    dev = torch.device(device) if device is not None else model_device
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if isinstance(model, DDP):
        if model_device != dev:
            raise ValueError(f"device={dev} differs from the device of the DistributedDataParallel model ({model_device})")

    # ---- data, resident on the device for the whole run
    X, ys, cls = _data_pair(train, "train", preprocessor, classes)
    Xv = yvs = None
    if val is not None:
        Xv, yvs, _ = _data_pair(val, "val", preprocessor, cls if cls is not None else classes)
        if len(Xv) != len(X) or any((a is None) != (b is None) or (a is not None and a.shape[1:] != b.shape[1:])
                                    for a, b in zip(X, Xv)):
            shape = lambda xs: [None if b is None else tuple(b.shape[1:]) for b in xs]  # noqa: E731
            raise ValueError(f"val X rows have shape {shape(Xv)} but train X rows {shape(X)}")
        if len(yvs) != len(ys):
            raise ValueError(f"train y holds {len(ys)} per-row tensors but val y {len(yvs)}")
    y = ys[0]
    yv = yvs[0] if yvs is not None else None
    task = "regression" if y.is_floating_point() else "classification"
    if val is not None and yv.is_floating_point() != y.is_floating_point():
        raise ValueError(f"train y is {y.dtype} but val y is {yv.dtype}: both must be labels or both floats")

    def place(t: torch.Tensor | None, is_y: bool) -> torch.Tensor | None:
        if t is None:
            return None
        if t.is_floating_point() and (not is_y or task == "regression"):
            t = t.to(param_dtype)
        return t.to(dev, non_blocking=True)

    X = tuple(place(b, False) for b in X)
    ys = (place(y, True),) + tuple(place(t, False) for t in ys[1:])
    y = ys[0]
    if val is not None:
        Xv = tuple(place(b, False) for b in Xv)
        yvs = (place(yv, True),) + tuple(place(t, False) for t in yvs[1:])
        yv = yvs[0]
    n_classes = 0
    if task == "classification":
        labs = [y] if yv is None else [y, yv]
        if any(t.dim() != 1 for t in labs):
            raise ValueError(f"class labels must be 1-D, got y of shape {tuple(y.shape)}")
        lo = min(int(t.min()) for t in labs)
        if lo < 0:
            raise ValueError(f"class labels must be >= 0, got a label {lo}")
        n_classes = max(2, max(int(t.max()) for t in labs) + 1, len(cls or ()))

    if len(ys) > 1 and not callable(loss):
        raise ValueError("y = (targets, *side) needs a callable loss(output, (targets, *side))")
    loss_fn = _make_loss(loss, task, n_classes)
    metric_name, metric_fn = _make_metric(metric, task, n_classes)
    if mode is None:
        if callable(metric):
            raise ValueError("mode ('max' or 'min') must be given with a callable metric")
        mode = "max" if M.GREATER_IS_BETTER[metric_name] else "min"

    # ---- model (moved once every argument is known good, wrapped for DDP) and optimizer
    if not isinstance(model, DDP):
        core.to(dev)
    net: nn.Module = model
    if world > 1 and not isinstance(model, DDP):
        net = DDP(core, device_ids=[dev.index] if dev.type == "cuda" else None)
    if optimizer is None:
        opt = torch.optim.AdamW(core.parameters(), lr=1e-3)
    elif isinstance(optimizer, torch.optim.Optimizer):
        opt = optimizer
    elif callable(optimizer):
        opt = optimizer(core.parameters())
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer factory must return a torch.optim.Optimizer, got {type(opt).__name__}")
    else:
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, a factory or None, got {type(optimizer).__name__}")

    def autocast() -> contextlib.AbstractContextManager:
        if amp == "bf16":
            return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def all_sum(*vals: torch.Tensor) -> torch.Tensor:
        t = torch.stack([v.to(torch.float64) for v in vals])
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
        return t

    n = n_rows(X)
    per_rank = math.ceil(n / world)  # steps are equal on every rank: the permutation wraps
    hist = History(metric=metric_name if val is not None else None, mode=mode if val is not None else None,
                   task=task, world_size=world, classes=cls)
    best_state: dict[str, torch.Tensor] | None = None
    best: float | None = None
    wait = 0
    was_training = core.training

    def evaluate() -> tuple[float, float]:
        nv = n_rows(Xv)
        chunk = math.ceil(nv / world)
        lo, hi = min(rank * chunk, nv), min((rank + 1) * chunk, nv)
        core.eval()  # the unwrapped module: evaluation needs no gradient sync
        outs, loss_sum = [], torch.zeros((), dtype=torch.float64, device=dev)
        with torch.no_grad(), autocast():
            for i in range(lo, hi, eval_batch_size):
                j = min(i + eval_batch_size, hi)
                out = core(*_rows(Xv, i, j))
                loss_sum += loss_fn(out, _target(_rows(yvs, i, j))).double() * out.shape[0]
                outs.append(out.float())
        core.train()
        if outs:
            out = torch.cat(outs)
        else:  # this rank has no validation rows; learn the output row shape from one row
            with torch.no_grad(), autocast():
                out = core(*_rows(Xv, 0, 1)).float()[:0]
        if world > 1:
            import torch.distributed as dist

            pad = torch.zeros((chunk - out.shape[0],) + tuple(out.shape[1:]), dtype=out.dtype, device=dev)
            parts = [torch.empty_like(torch.cat([out, pad])) for _ in range(world)]
            dist.all_gather(parts, torch.cat([out, pad]))
            out = torch.cat([p[:max(0, min(nv, (r + 1) * chunk) - r * chunk)] for r, p in enumerate(parts)])
        vloss = all_sum(loss_sum)[0] / nv
        m = metric_fn(yv, out)
        m = m.to(torch.float64) if isinstance(m, torch.Tensor) else torch.tensor(float(m), dtype=torch.float64)
        res = torch.stack([vloss.to(dev), m.to(dev)])
        if world > 1:
            import torch.distributed as dist

            dist.broadcast(res, 0)  # one agreed value, whatever float noise a rank's reduction had
        vl, mv = res.tolist()
        return vl, mv

    from tqdm.auto import tqdm

    bar = tqdm(total=epochs, desc="fit", unit="epoch", disable=not progress or rank != 0, leave=False)
    rng_devices = [dev] if dev.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(seed + rank)  # dropout differs between ranks, as their data does
            gen = torch.Generator(device=dev)
            gen.manual_seed(seed)  # the permutation is the same on every rank
            core.train()
            for epoch in range(epochs):
                t0 = time.perf_counter()
                if shuffle:
                    perm = torch.randperm(n, generator=gen, device=dev)
                else:
                    perm = torch.arange(n, device=dev) if world > 1 else None
                if world > 1:
                    total = per_rank * world
                    if total > n:
                        perm = torch.cat([perm, perm[: total - n]])
                    perm = perm[rank::world]
                loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
                for i in range(0, per_rank, batch_size):
                    if perm is None:
                        xb, yb = _rows(X, i, i + batch_size), _rows(ys, i, i + batch_size)
                    else:
                        idx = perm[i:i + batch_size]
                        xb, yb = _take(X, idx), _take(ys, idx)
                    opt.zero_grad(set_to_none=True)
                    with autocast():
                        out = net(*xb)
                        batch_loss = loss_fn(out, _target(yb))
                    batch_loss.backward()
                    if grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(core.parameters(), float(grad_clip))
                    opt.step()
                    loss_sum += batch_loss.detach().double() * yb[0].shape[0]
                hist.train_loss.append(float(all_sum(loss_sum)[0]) / (per_rank * world))

                stop = False
                if val is not None:
                    vl, mv = evaluate()
                    hist.val_loss.append(vl)
                    hist.val_metric.append(mv)
                    improved = not math.isnan(mv) and (
                        best is None or (mv > best + min_delta if mode == "max" else mv < best - min_delta))
                    if improved:
                        best, wait = mv, 0
                        hist.best_epoch, hist.best_metric = epoch, mv
                        if patience is not None:
                            best_state = {k: v.detach().clone() for k, v in core.state_dict().items()}
                    else:
                        wait += 1
                        stop = patience is not None and wait >= patience
                else:
                    hist.best_epoch = epoch
                hist.epoch_seconds.append(time.perf_counter() - t0)
                for cb in callbacks:
                    stop = bool(cb(hist, core)) or stop
                if world > 1:  # every rank stops together, whoever asked
                    stop = bool(all_sum(torch.tensor(float(stop), device=dev))[0] > 0)
                post = {"loss": f"{hist.train_loss[-1]:.4g}"}
                if val is not None:
                    post.update(val_loss=f"{hist.val_loss[-1]:.4g}", **{metric_name: f"{hist.val_metric[-1]:.4g}"})
                bar.set_postfix(post, refresh=False)
                bar.update(1)
                if stop:
                    hist.stopped_early = epoch + 1 < epochs
                    break
    finally:
        bar.close()
        core.train(was_training)

    if best_state is not None:
        core.load_state_dict(best_state)
        hist.restored_best = True
    hist.elapsed_seconds = time.perf_counter() - t_start
    return hist
