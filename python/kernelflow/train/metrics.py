"""Classification and regression metrics computed with torch ops on the data's own device.

Each function takes torch tensors (numpy arrays and lists are converted, never the other way
round), follows scikit-learn's definition of the metric of the same name and returns a Python
float; the ``*_tensor`` forms used by the training loop return a 0-d tensor on the device so
that no host synchronisation happens until the caller asks for the value.

Conventions shared with scikit-learn:
- empty input raises ``ValueError``; mismatched lengths raise ``ValueError``.
- ``precision``/``recall``/``f1`` with a zero denominator give ``zero_division`` (0.0 by
  default, where scikit-learn gives 0.0 with a warning).
- ``roc_auc`` of a ``y_true`` holding a single class is undefined: like scikit-learn >= 1.6
  it warns (``UndefinedMetricWarning``) and returns NaN, so a validation split that happens
  to hold one class does not abort training (older scikit-learn raised ``ValueError``). Ties in the scores count one half (average ranks, the Mann-Whitney U statistic).
- ``r2`` of a constant ``y_true`` is 1.0 for a perfect prediction and 0.0 otherwise (scikit-
  learn's ``force_finite=True``); with fewer than two samples it is NaN with a warning.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

__all__ = [
    "accuracy", "precision", "recall", "f1", "roc_auc", "mse", "mae", "r2",
    "accuracy_tensor", "precision_recall_f1_tensor", "roc_auc_tensor", "mse_tensor", "mae_tensor", "r2_tensor",
    "METRICS", "GREATER_IS_BETTER", "UndefinedMetricWarning",
]


class UndefinedMetricWarning(UserWarning):
    """The metric is undefined for this input (the value returned is NaN)."""

_AVERAGES = ("binary", "macro", "micro", "weighted")


def _as_tensor(x: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(x)
        except Exception as e:  # noqa: BLE001 - report which argument could not be converted
            raise TypeError(f"{name} must be a tensor or array-like, got {type(x).__name__}") from e
    if device is not None and t.device != device:
        t = t.to(device)
    return t


def _pair(y_true: Any, y_other: Any, other_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    # Work where the data already is: a tensor argument decides the device, y_true first.
    if not isinstance(y_true, torch.Tensor) and isinstance(y_other, torch.Tensor):
        yt = _as_tensor(y_true, "y_true", y_other.device)
    else:
        yt = _as_tensor(y_true, "y_true")
    yo = _as_tensor(y_other, other_name, yt.device)
    if yt.dim() == 0 or yo.dim() == 0:
        raise ValueError("y_true and %s must have at least one dimension" % other_name)
    if yt.shape[0] == 0:
        raise ValueError("y_true is empty: a metric needs at least one sample")
    if yt.shape[0] != yo.shape[0]:
        raise ValueError(f"y_true and {other_name} have different lengths: {yt.shape[0]} != {yo.shape[0]}")
    return yt, yo


def _labels_1d(yt: torch.Tensor, yp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if yt.dim() != 1 or yp.dim() != 1:
        raise ValueError(f"labels must be 1-D, got y_true {tuple(yt.shape)} and y_pred {tuple(yp.shape)}")
    if yt.dtype != yp.dtype:
        dt = torch.promote_types(yt.dtype, yp.dtype)
        yt, yp = yt.to(dt), yp.to(dt)
    return yt, yp


def _float_dtype(device: torch.device) -> torch.dtype:
    # float64 accumulation wherever the device has it (MPS does not).
    return torch.float32 if device.type == "mps" else torch.float64


# ---------------------------------------------------------------------------------------------
# classification


def accuracy_tensor(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Fraction of ``y_pred`` labels equal to ``y_true`` (0-d tensor)."""
    yt, yp = _labels_1d(*_pair(y_true, y_pred, "y_pred"))
    return (yt == yp).to(_float_dtype(yt.device)).mean()


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of correct labels, like ``sklearn.metrics.accuracy_score``."""
    return float(accuracy_tensor(y_true, y_pred))


def precision_recall_f1_tensor(y_true: Any, y_pred: Any, *, average: str | None = "binary", pos_label: Any = 1,
                               zero_division: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision, recall and F1 as tensors (0-d, or per class when ``average=None``).

    ``average``: "binary" (the ``pos_label`` class; y may hold at most two labels), "macro"
    (unweighted mean over the sorted union of labels in y_true and y_pred), "micro" (global
    counts), "weighted" (mean weighted by each class's support) or None (per class).
    """
    if average is not None and average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES} or None, got {average!r}")
    if not isinstance(zero_division, (int, float)) or isinstance(zero_division, bool):
        raise TypeError(f"zero_division must be a number, got {type(zero_division).__name__}")
    yt, yp = _labels_1d(*_pair(y_true, y_pred, "y_pred"))
    fdt = _float_dtype(yt.device)
    labels, inv = torch.unique(torch.cat([yt, yp]), sorted=True, return_inverse=True)
    n, k = yt.shape[0], labels.shape[0]
    it, ip = inv[:n], inv[n:]
    hit = it == ip
    tp = torch.bincount(it[hit], minlength=k).to(fdt)
    n_pred = torch.bincount(ip, minlength=k).to(fdt)
    n_true = torch.bincount(it, minlength=k).to(fdt)

    if average == "binary":
        if k > 2:
            raise ValueError(f"average='binary' needs at most two labels, found {k}; use average='macro'")
        pos = labels == torch.as_tensor(pos_label, dtype=labels.dtype, device=labels.device)
        if not bool(pos.any()):
            if k == 2:
                raise ValueError(f"pos_label={pos_label!r} is not a label in y_true or y_pred")
            # One label present and it is not pos_label: no positives anywhere.
            z = torch.full((), float(zero_division), dtype=fdt, device=yt.device)
            return z, z.clone(), z.clone()
        tp, n_pred, n_true = tp[pos][0], n_pred[pos][0], n_true[pos][0]
    elif average == "micro":
        tp, n_pred, n_true = tp.sum(), n_pred.sum(), n_true.sum()

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp_min(1), torch.full_like(num, float(zero_division)))

    p = ratio(tp, n_pred)
    r = ratio(tp, n_true)
    # F1 = 2TP / (2TP + FP + FN), zero_division only where nothing is predicted or true.
    f = ratio(2 * tp, n_pred + n_true)
    if average == "macro":
        p, r, f = p.mean(), r.mean(), f.mean()
    elif average == "weighted":
        w = n_true / n_true.sum()
        p, r, f = (p * w).sum(), (r * w).sum(), (f * w).sum()
    return p, r, f


def _scalar_or_list(t: torch.Tensor) -> float | list[float]:
    return float(t) if t.dim() == 0 else t.tolist()


def precision(y_true: Any, y_pred: Any, *, average: str | None = "binary", pos_label: Any = 1,
              zero_division: float = 0.0) -> float | list[float]:
    """TP / (TP + FP), like ``sklearn.metrics.precision_score`` (see ``precision_recall_f1_tensor``)."""
    return _scalar_or_list(precision_recall_f1_tensor(y_true, y_pred, average=average, pos_label=pos_label,
                                                      zero_division=zero_division)[0])


def recall(y_true: Any, y_pred: Any, *, average: str | None = "binary", pos_label: Any = 1,
           zero_division: float = 0.0) -> float | list[float]:
    """TP / (TP + FN), like ``sklearn.metrics.recall_score``."""
    return _scalar_or_list(precision_recall_f1_tensor(y_true, y_pred, average=average, pos_label=pos_label,
                                                      zero_division=zero_division)[1])


def f1(y_true: Any, y_pred: Any, *, average: str | None = "binary", pos_label: Any = 1,
       zero_division: float = 0.0) -> float | list[float]:
    """2TP / (2TP + FP + FN), like ``sklearn.metrics.f1_score``."""
    return _scalar_or_list(precision_recall_f1_tensor(y_true, y_pred, average=average, pos_label=pos_label,
                                                      zero_division=zero_division)[2])


def _average_ranks(scores: torch.Tensor) -> torch.Tensor:
    """1-based ranks of every column of ``scores`` (n, c) with ties given their mean rank."""
    n = scores.shape[0]
    sorted_s, order = torch.sort(scores, dim=0, stable=True)
    idx = torch.arange(n, device=scores.device).unsqueeze(1).expand_as(sorted_s)
    new = torch.ones_like(sorted_s, dtype=torch.bool)
    new[1:] = sorted_s[1:] != sorted_s[:-1]
    # First and last sorted position of each tie group, by running max / reversed running min.
    start = torch.cummax(torch.where(new, idx, torch.zeros_like(idx)), dim=0).values
    last = torch.ones_like(new)
    last[:-1] = new[1:]
    end = torch.flip(torch.cummin(torch.flip(torch.where(last, idx, torch.full_like(idx, n)), [0]), dim=0).values, [0])
    fdt = _float_dtype(scores.device)
    avg = (start + end).to(fdt) / 2 + 1
    ranks = torch.empty_like(avg)
    ranks.scatter_(0, order, avg)
    return ranks


def _binary_auc(pos: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """Mann-Whitney AUC per column: pos (n, c) bool, ranks (n, c) average ranks."""
    fdt = ranks.dtype
    n_pos = pos.sum(0).to(fdt)
    n_neg = pos.shape[0] - n_pos
    rank_sum = (ranks * pos.to(fdt)).sum(0)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def roc_auc_tensor(y_true: Any, y_score: Any) -> torch.Tensor:
    """Area under the ROC curve (0-d tensor).

    Binary: ``y_true`` holds two labels (the larger is positive) and ``y_score`` is (n,) or
    (n, 2) (column 1 scores the positive class). Multiclass: ``y_score`` is (n, c) with
    c > 2 and ``y_true`` holds labels 0..c-1, every one present; the result is the unweighted
    mean of the one-vs-rest AUCs (sklearn's ``multi_class="ovr", average="macro"``; unlike
    sklearn the rows need not be probabilities summing to one).
    """
    yt, ys = _pair(y_true, y_score, "y_score")
    if yt.dim() != 1:
        raise ValueError(f"y_true must be 1-D labels, got shape {tuple(yt.shape)}")
    if ys.dim() > 2:
        raise ValueError(f"y_score must be 1-D or 2-D, got shape {tuple(ys.shape)}")
    if ys.is_complex() or ys.dtype == torch.bool:
        raise TypeError(f"y_score must be real-valued, got {ys.dtype}")
    if not ys.is_floating_point():
        ys = ys.to(_float_dtype(ys.device))
    if not bool(torch.isfinite(ys).all()):
        raise ValueError("y_score contains NaN or infinity")
    labels, inv = torch.unique(yt, sorted=True, return_inverse=True)
    k = labels.shape[0]
    if ys.dim() == 2 and ys.shape[1] > 2:
        c = ys.shape[1]
        if k != c:
            raise ValueError(f"y_score has {c} columns but y_true holds {k} distinct labels; "
                             "roc_auc is undefined for a class that never occurs")
        pos = inv.unsqueeze(1) == torch.arange(c, device=yt.device)
        return _binary_auc(pos, _average_ranks(ys)).mean()
    if ys.dim() == 2:
        if ys.shape[1] == 2:
            ys = ys[:, 1]
        elif ys.shape[1] == 1:
            ys = ys[:, 0]
        else:
            raise ValueError("y_score has no columns")
    if k == 1:
        warnings.warn("Only one class is present in y_true. ROC AUC score is not defined in that case.",
                      UndefinedMetricWarning, stacklevel=3)
        return torch.full((), float("nan"), dtype=_float_dtype(ys.device), device=ys.device)
    if k > 2:
        raise ValueError(f"y_true holds {k} labels but y_score is 1-D; pass (n, {k}) class scores")
    pos = (inv == 1).unsqueeze(1)
    return _binary_auc(pos, _average_ranks(ys.unsqueeze(1)))[0]


def roc_auc(y_true: Any, y_score: Any) -> float:
    """ROC AUC, like ``sklearn.metrics.roc_auc_score`` (see ``roc_auc_tensor``)."""
    return float(roc_auc_tensor(y_true, y_score))


# ---------------------------------------------------------------------------------------------
# regression


def _regression_pair(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    yt, yp = _pair(y_true, y_pred, "y_pred")
    fdt = _float_dtype(yt.device)
    if yt.shape != yp.shape:
        # (n,) against (n, 1) is the common model-output shape; anything else is an error.
        if yt.numel() == yp.numel() and yt.dim() <= 2 and yp.dim() <= 2:
            yp = yp.reshape(yt.shape)
        else:
            raise ValueError(f"y_true and y_pred have different shapes: {tuple(yt.shape)} != {tuple(yp.shape)}")
    if yt.dim() > 2:
        raise ValueError(f"targets must be 1-D or 2-D, got shape {tuple(yt.shape)}")
    return yt.to(fdt), yp.to(fdt)


def mse_tensor(y_true: Any, y_pred: Any) -> torch.Tensor:
    yt, yp = _regression_pair(y_true, y_pred)
    return ((yt - yp) ** 2).mean()


def mae_tensor(y_true: Any, y_pred: Any) -> torch.Tensor:
    yt, yp = _regression_pair(y_true, y_pred)
    return (yt - yp).abs().mean()


def r2_tensor(y_true: Any, y_pred: Any) -> torch.Tensor:
    yt, yp = _regression_pair(y_true, y_pred)
    if yt.shape[0] < 2:
        warnings.warn("R^2 score is not well-defined with less than two samples.", RuntimeWarning, stacklevel=3)
        return torch.full((), float("nan"), dtype=yt.dtype, device=yt.device)
    if yt.dim() == 1:
        yt, yp = yt.unsqueeze(1), yp.unsqueeze(1)
    ss_res = ((yt - yp) ** 2).sum(0)
    ss_tot = ((yt - yt.mean(0)) ** 2).sum(0)
    ok = ss_tot > 0
    score = torch.where(ok, 1 - ss_res / torch.where(ok, ss_tot, torch.ones_like(ss_tot)),
                        torch.where(ss_res == 0, torch.ones_like(ss_res), torch.zeros_like(ss_res)))
    return score.mean()  # uniform average over outputs


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error, like ``sklearn.metrics.mean_squared_error`` (uniform over outputs)."""
    return float(mse_tensor(y_true, y_pred))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, like ``sklearn.metrics.mean_absolute_error``."""
    return float(mae_tensor(y_true, y_pred))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination, like ``sklearn.metrics.r2_score``."""
    return float(r2_tensor(y_true, y_pred))


METRICS = {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "roc_auc": roc_auc,
           "mse": mse, "mae": mae, "r2": r2}
GREATER_IS_BETTER = {"accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True,
                     "mse": False, "mae": False, "r2": True}
