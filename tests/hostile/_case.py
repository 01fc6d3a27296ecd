"""The corpus's vocabulary: ``@case`` registers a check, ``raises`` / ``close`` assert outcomes.

A case is a function that raises on a wrong outcome (AssertionError with a message) and
returns on the right one. Every case asserts an exact outcome: either a clean ValueError /
TypeError whose message names the argument (``raises``), or a result equal to a reference
(``close``: numpy / scikit-learn / torch / float64 / mpmath, NaN where the reference has NaN).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

CASES: dict[str, "Case"] = {}
AREAS = ("ops", "estimators", "preprocessor", "nn", "distill", "quant", "train", "io")


@dataclass
class Case:
    name: str  # "<area>/<what>"
    fn: Callable[[], None]
    xfail: str | None  # reason (names the owner) while the fix has not landed
    timeout: float  # seconds; past it the case is a hang


def case(name: str, xfail: str | None = None, timeout: float = 60.0):
    area = name.split("/")[0]
    if area not in AREAS:
        raise ValueError(f"case {name!r}: area must be one of {AREAS}")

    def deco(fn):
        if name in CASES:
            raise ValueError(f"duplicate case name {name!r}")
        CASES[name] = Case(name, fn, xfail, timeout)
        return fn

    return deco


def raises(exc, match: str, fn: Callable, *args, **kwargs) -> BaseException:
    """fn(*args) must raise exc (ValueError / TypeError ...) whose message matches ``match``
    (a regex naming the argument and what was expected)."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        if not re.search(match, str(e), flags=re.S):
            raise AssertionError(f"{type(e).__name__} message {str(e)[:300]!r} does not match {match!r}") from e
        return e
    except BaseException as e:  # noqa: BLE001 - the wrong exception type is the failure
        raise AssertionError(f"expected {exc.__name__ if isinstance(exc, type) else exc} matching {match!r}, "
                             f"got {type(e).__name__}: {str(e)[:300]}") from e
    raise AssertionError(f"expected {exc.__name__ if isinstance(exc, type) else exc} matching {match!r}, nothing raised")


def _np(a):
    try:
        import torch

        if isinstance(a, torch.Tensor):
            a = a.detach().cpu()
            if a.dtype == torch.bfloat16:
                a = a.float()
            return a.numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(a)


def close(got, ref, rtol: float = 1e-6, atol: float = 0.0, what: str = "result") -> None:
    """got equals ref within tolerance, same shape, NaN exactly where ref has NaN, same infinities."""
    g, r = _np(got).astype(np.float64), _np(ref).astype(np.float64)
    if g.shape != r.shape:
        raise AssertionError(f"{what}: shape {g.shape}, reference {r.shape}")
    if not np.array_equal(np.isnan(g), np.isnan(r)):
        raise AssertionError(f"{what}: NaN at {np.argwhere(np.isnan(g) != np.isnan(r))[:5].tolist()} differs from the reference")
    fin = np.isfinite(r)
    if not np.array_equal(g[~fin & ~np.isnan(r)], r[~fin & ~np.isnan(r)]) or not np.isfinite(g[fin]).all():
        raise AssertionError(f"{what}: infinities differ from the reference")
    err = np.abs(g[fin] - r[fin])
    tol = atol + rtol * np.abs(r[fin])
    if err.size and np.any(err > tol):
        i = int(np.argmax(err - tol))
        raise AssertionError(f"{what}: max error {err[i]:.3g} at flat index {i} (got {g[fin][i]!r}, reference "
                             f"{r[fin][i]!r}; rtol={rtol}, atol={atol})")


def equal(got, ref, what: str = "result") -> None:
    close(got, ref, rtol=0.0, atol=0.0, what=what)
