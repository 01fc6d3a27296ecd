"""``Distiller``: train a student against a frozen teacher, in one call or inside your own loop."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kernelflow.distill.loss import DistillationLoss


def _args(x: Any) -> tuple:
    """Model arguments: a tuple / list of input blocks (``(num, cat)``) or one tensor."""
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _first_tensor(out: Any) -> torch.Tensor:
    """A hooked module's output: the tensor itself, or the first tensor of a tuple/list."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return o
    raise TypeError(f"a hooked module must return a tensor (or a tuple holding one), got {type(out).__name__}")


def _feature_dim(module: nn.Module, name: str) -> int:
    for attr in ("out_features", "normalized_shape", "num_features", "embedding_dim", "out_channels"):
        v = getattr(module, attr, None)
        if isinstance(v, int):
            return v
        if isinstance(v, (tuple, list)) and len(v) == 1 and isinstance(v[0], int):
            return v[0]
    raise ValueError(f"cannot tell the feature size of module {name!r} ({type(module).__name__}); "
                     f"pass feature_dims={{{name!r}: size}}")


class Distiller(nn.Module):
    """Distil ``teacher`` into ``student``.

    The teacher is frozen: put in eval mode (and kept there by ``train()``), its parameters set
    to ``requires_grad=False``, and always run under ``torch.no_grad()``.

    loss: a module called as ``loss(student_logits, teacher_logits, labels)``; default
    ``DistillationLoss()``.
    optimizer: used by ``step``; default Adam(lr=1e-3) over ``trainable_parameters()`` (the
    student and the feature projections). If you pass your own, include the projections.
    feature_pairs: ``{student_module_name: teacher_module_name}`` (or a sequence of pairs) of
    submodules (names as in ``named_modules()``) whose outputs are matched: a learned
    ``nn.Linear(student_dim, teacher_dim)`` projects the student feature (last dimension) and the
    MSE to the teacher feature, times ``feature_weight``, is added to the loss. Sizes come from
    the modules (``out_features``, ``normalized_shape``, ...) or ``feature_dims`` ({name: size},
    names from either model).

    In your own loop::

        loss = distiller.compute_loss(x, y)
        loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, loss: nn.Module | None = None,
                 optimizer: torch.optim.Optimizer | None = None,
                 feature_pairs: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                 feature_weight: float = 1.0, feature_dims: Mapping[str, int] | None = None) -> None:
        super().__init__()
        if not isinstance(teacher, nn.Module) or not isinstance(student, nn.Module):
            raise TypeError("teacher and student must be torch.nn.Module instances")
        if feature_weight < 0:
            raise ValueError(f"feature_weight must be >= 0, got {feature_weight!r}")
        self.teacher = teacher
        self.student = student
        self.loss_fn = loss if loss is not None else DistillationLoss()
        self.feature_weight = float(feature_weight)
        teacher.eval()
        teacher.requires_grad_(False)

        pairs = list(feature_pairs.items()) if isinstance(feature_pairs, Mapping) else list(feature_pairs or [])
        dims = dict(feature_dims or {})
        s_mods, t_mods = dict(student.named_modules()), dict(teacher.named_modules())
        self._pairs: list[tuple[str, str]] = []
        self.projections = nn.ModuleDict()
        self._s_feats: dict[str, torch.Tensor] = {}
        self._t_feats: dict[str, torch.Tensor] = {}
        self._hooks = []
        for sname, tname in pairs:
            if sname not in s_mods:
                raise ValueError(f"feature_pairs: student has no submodule {sname!r}")
            if tname not in t_mods:
                raise ValueError(f"feature_pairs: teacher has no submodule {tname!r}")
            sd = dims.get(sname) or _feature_dim(s_mods[sname], sname)
            td = dims.get(tname) or _feature_dim(t_mods[tname], tname)
            self.projections[self._key(sname)] = nn.Linear(sd, td)
            self._pairs.append((sname, tname))
            self._hooks.append(s_mods[sname].register_forward_hook(self._saver(self._s_feats, sname)))
            self._hooks.append(t_mods[tname].register_forward_hook(self._saver(self._t_feats, tname)))
        # the projections live where the student does
        try:
            p = next(student.parameters())
            self.projections.to(device=p.device, dtype=p.dtype)
        except StopIteration:
            pass
        self.optimizer = optimizer if optimizer is not None else torch.optim.Adam(self.trainable_parameters(), lr=1e-3)
        self.last_terms: dict[str, torch.Tensor] = {}

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "__") or "_root"

    @staticmethod
    def _saver(store: dict, name: str):
        def hook(_module, _inputs, output):
            store[name] = _first_tensor(output)
        return hook

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        """The student's and the projections' parameters (never the teacher's)."""
        yield from self.student.parameters()
        yield from self.projections.parameters()

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        self.teacher.eval()  # frozen: dropout / batch-norm statistics never change
        return self

    def remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def teacher_logits(self, x: torch.Tensor | tuple) -> torch.Tensor:
        """The frozen teacher's output on x (a tensor, or a tuple of input blocks such as (num, cat))."""
        with torch.no_grad():
            return self.teacher(*_args(x))

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        """The student's prediction (what you deploy)."""
        return self.student(*x)

    def compute_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Forward teacher (no grad) and student, return the total loss (a scalar with a graph
        into the student and the projections). The terms are kept, detached, in ``last_terms``."""
        self._s_feats.clear()
        self._t_feats.clear()
        t_logits = self.teacher_logits(x)
        s_logits = self.student(*_args(x))
        kd = self.loss_fn(s_logits, t_logits, y)
        total = kd
        terms = {"distill_loss": kd.detach()}
        if self._pairs:
            feat = s_logits.new_zeros((), dtype=torch.float32)
            for sname, tname in self._pairs:
                if sname not in self._s_feats or tname not in self._t_feats:
                    raise RuntimeError(f"feature pair ({sname!r}, {tname!r}) produced no output in this forward pass")
                sf = self.projections[self._key(sname)](self._s_feats[sname])
                tf = self._t_feats[tname].detach()
                if sf.shape != tf.shape:
                    raise ValueError(f"projected student feature {sname!r} has shape {tuple(sf.shape)}, "
                                     f"teacher feature {tname!r} has {tuple(tf.shape)}")
                feat = feat + F.mse_loss(sf.float(), tf.float())
            total = total + self.feature_weight * feat
            terms["feature_loss"] = feat.detach()
        terms["loss"] = total.detach()
        self.last_terms = terms
        self._s_feats.clear()
        self._t_feats.clear()
        return total

    def step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """One training step (forward both, loss, backward, optimizer step); returns the loss terms as floats."""
        self.student.train()
        self.projections.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.compute_loss(x, y)
        loss.backward()
        self.optimizer.step()
        return {k: float(v) for k, v in self.last_terms.items()}

    def fit(self, train: Sequence[Any], val: Sequence[Any] | None = None, *, preprocessor: Any = None,
            classes: Sequence[Any] | None = None, teacher_batch_size: int = 8192, **fit_kwargs: Any):
        """Train the student against the frozen teacher with ``kernelflow.train.fit`` and return
        its :class:`~kernelflow.train.History` (metric and early stopping on ``val``).

        ``train`` / ``val`` = (X, y) in any form ``fit`` takes: a tensor, ``(num, cat[, passthrough])``
        blocks, or a DataFrame with a fitted ``preprocessor``; string labels are encoded
        (``History.classes``). The teacher is frozen and deterministic in eval mode, so its logits
        (and the features of ``feature_pairs``) are computed once per row, ``teacher_batch_size``
        rows at a time, instead of once per row and epoch; the loss of every batch is then
        ``loss(student_logits, teacher_logits, labels)`` plus the feature term, exactly as
        ``compute_loss``. ``optimizer`` defaults to this Distiller's; the other keyword arguments
        go to ``kernelflow.train.fit`` (``epochs``, ``batch_size``, ``metric``, ``patience``, ...).
        """
        from kernelflow.train import fit as _fit
        from kernelflow.train.data import as_inputs, n_rows

        if "loss" in fit_kwargs:
            raise TypeError("Distiller.fit takes its loss from the Distiller (pass loss= to Distiller(...))")
        if not isinstance(teacher_batch_size, int) or isinstance(teacher_batch_size, bool) or teacher_batch_size < 1:
            raise ValueError(f"teacher_batch_size must be an int >= 1, got {teacher_batch_size!r}")
        dev = fit_kwargs.get("device")
        dev = torch.device(dev) if dev is not None else next(iter(self.student.parameters()), torch.empty(0)).device

        def side(data: Any, name: str) -> tuple:
            if not isinstance(data, (tuple, list)) or len(data) != 2:
                raise TypeError(f"{name} must be an (X, y) pair, got {type(data).__name__}")
            xs = as_inputs(data[0], f"{name}[0] (X)", preprocessor)
            self.teacher.to(dev)
            outs: list[torch.Tensor] = []
            feats: dict[str, list[torch.Tensor]] = {t: [] for _, t in self._pairs}
            n = n_rows(xs)
            for i in range(0, n, teacher_batch_size):
                xb = tuple(None if b is None else b[i:i + teacher_batch_size].to(dev) for b in xs)
                self._t_feats.clear()
                outs.append(self.teacher_logits(xb).float())
                for _, t in self._pairs:
                    feats[t].append(self._t_feats[t].detach().float())
            self._t_feats.clear()
            cat = torch.cat if n else (lambda v: torch.empty(0))
            return xs, (data[1], cat(outs)) + tuple(cat(feats[t]) for _, t in self._pairs)

        one = lambda xs: xs if len(xs) > 1 else xs[0]  # noqa: E731 - blocks stay a tuple, one tensor stays itself
        xs, ys = side(train, "train")
        val_pair = None
        if val is not None:
            xv, yv = side(val, "val")
            val_pair = (one(xv), yv)

        def loss(out: torch.Tensor, yt: tuple) -> torch.Tensor:
            labels, t_logits = yt[0], yt[1]
            kd = self.loss_fn(out, t_logits, labels)
            if not self._pairs:
                return kd
            feat = out.new_zeros((), dtype=torch.float32)
            for k, (sname, _tname) in enumerate(self._pairs):
                sf = self.projections[self._key(sname)](self._s_feats[sname])
                feat = feat + F.mse_loss(sf.float(), yt[2 + k])
            return kd + self.feature_weight * feat

        fit_kwargs.setdefault("optimizer", self.optimizer)
        self.student.train()
        self.projections.to(dev)
        # the projections train with the student: the loop moves and optimises the model it gets
        wrapped = _StudentWithProjections(self.student, self.projections)
        try:
            return _fit(wrapped, (one(xs), ys), val_pair, loss=loss, classes=classes, **fit_kwargs)
        finally:
            self._s_feats.clear()


class _StudentWithProjections(nn.Module):
    """The student (whose output is the model's) and the feature projections, as one module so
    the training loop moves, checkpoints and restores both."""

    def __init__(self, student: nn.Module, projections: nn.ModuleDict) -> None:
        super().__init__()
        self.student = student
        self.projections = projections

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        return self.student(*x)
