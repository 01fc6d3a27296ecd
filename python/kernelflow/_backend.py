"""Backend selection: ``cuda`` (CUDA C++), ``triton``, ``cpu`` (C++/OpenMP), ``torch`` (reference).

``auto`` picks, for CUDA tensors, the CUDA kernel if compiled, else Triton, else the torch
reference; for CPU tensors, the C++ kernel, else the reference. An explicit choice (argument,
``with kernelflow.backend(...)`` or the ``KERNELFLOW_BACKEND`` environment variable, in that
order of precedence) that cannot run on the data's device is an error, never a silent fallback.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
from typing import Iterator

import torch

from kernelflow._ext import ext, ext_error, has_cuda_kernels

BACKENDS = ("cuda", "triton", "cpu", "torch")
_CHOICES = ("auto",) + BACKENDS

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("kernelflow_backend", default=None)


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run here."""


def _check_name(name: str, arg: str = "backend") -> str:
    if not isinstance(name, str) or name.lower() not in _CHOICES:
        raise ValueError(f"{arg} must be one of {_CHOICES}, got {name!r}")
    return name.lower()


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Use ``name`` for every kernelflow op in this block (unless a call names its own)."""
    token = _current.set(_check_name(name))
    try:
        yield
    finally:
        _current.reset(token)


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=None)
def triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def unavailable_reason(name: str, device: torch.device) -> str | None:
    """Why backend ``name`` cannot run on ``device``; None when it can."""
    dev = device.type
    if name == "torch":
        return None
    if name == "cpu":
        if dev != "cpu":
            return f"backend 'cpu' runs on CPU tensors; the data is on {device}"
        return None if ext() is not None else ext_error()
    if name == "cuda":
        if dev != "cuda":
            return f"backend 'cuda' runs on CUDA tensors; the data is on {device}"
        if ext() is None:
            return ext_error()
        if not has_cuda_kernels():
            return "kernelflow was built without CUDA kernels (no nvcc at build time or KERNELFLOW_CUDA=OFF)"
        return None
    if name == "triton":
        if not triton_importable():
            return "backend 'triton' needs the triton package (pip install triton)"
        if dev == "cuda":
            return None
        if dev == "cpu":
            return None if triton_interpreted() else (
                "backend 'triton' on CPU tensors needs the Triton interpreter (set TRITON_INTERPRET=1 before importing triton)")
        return f"backend 'triton' does not run on {device}"
    return f"unknown backend {name!r}"


# Under torch.compile, resolution runs once at trace time and its answer is a constant of the
# graph: a compiled graph keeps the backend it was traced with (the mark is set below by hand:
# torch.compiler.assume_constant_result would import torch._dynamo, 2 s, at import time).
def resolve(requested: str | None, device: torch.device, registered: tuple[str, ...] = BACKENDS) -> str:
    """The concrete backend for data on ``device``: the call's choice, else the block's, else
    KERNELFLOW_BACKEND, else auto. ``registered``: the backends the op has kernels for; a call
    naming another one is an error, a block's or the environment's choice the op lacks falls back
    to auto among them (an op without Triton kernels still runs inside ``backend("triton")``)."""
    name = _check_name(requested) if requested is not None else "auto"
    if name != "auto" and name not in registered:
        raise BackendUnavailableError(f"backend {name!r} is unavailable: this op runs on {', '.join(registered)}")
    if name == "auto":  # a call's "auto" defers to the block, then to the environment
        name = _current.get() or "auto"
    if name == "auto":
        name = _check_name(os.environ.get("KERNELFLOW_BACKEND") or "auto", "KERNELFLOW_BACKEND")
    name = _check_name(name)
    if name != "auto":
        reason = unavailable_reason(name, device)
        if reason is not None:
            raise BackendUnavailableError(f"backend {name!r} is unavailable: {reason}")
        if name in registered:
            return name
    order = ("cuda", "triton", "torch") if device.type == "cuda" else ("cpu", "torch")
    for cand in order:
        if cand in registered and unavailable_reason(cand, device) is None:
            return cand
    return "torch"


resolve._dynamo_marked_constant = True  # what torch.compiler.assume_constant_result sets


def available_backends(device: str | torch.device = "cpu") -> list[str]:
    dev = torch.device(device)
    return [b for b in BACKENDS if unavailable_reason(b, dev) is None]
