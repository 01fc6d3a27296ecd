"""The record ``fit`` returns: per-epoch losses and metrics, JSON in and out."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any


def _json_float(v: float | None) -> float | None:
    # JSON has no NaN/inf: they are stored as null.
    return None if v is None or not math.isfinite(v) else float(v)


@dataclass
class History:
    """What happened during ``fit``.

    ``train_loss[i]``, ``val_loss[i]``, ``val_metric[i]`` and ``epoch_seconds[i]`` belong to
    epoch ``i`` (0-based); the val lists are empty without validation data. ``best_epoch`` is
    the epoch with the best validation metric (the last epoch without validation data) and
    ``stopped_early`` says whether early stopping or a callback ended training. ``classes``
    lists the original labels (strings, ...) in class-index order when fit encoded them.
    """

    metric: str | None = None
    mode: str | None = None
    task: str = ""
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False
    restored_best: bool = False
    elapsed_seconds: float = 0.0
    world_size: int = 1
    classes: list | None = None  # the label of each class index when fit encoded the labels

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("train_loss", "val_loss", "val_metric", "epoch_seconds"):
            d[k] = [_json_float(v) for v in d[k]]
        d["best_metric"] = _json_float(d["best_metric"])
        d["epochs_run"] = self.epochs_run
        return d

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        nan = float("nan")
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("train_loss", "val_loss", "val_metric", "epoch_seconds"):
            if k in kw:
                kw[k] = [nan if v is None else float(v) for v in kw[k]]
        return cls(**kw)

    @classmethod
    def from_json(cls, s: str) -> "History":
        return cls.from_dict(json.loads(s))
