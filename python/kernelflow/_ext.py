"""Access to the compiled extension ``kernelflow._C`` (optional: the torch backend works without it)."""

from __future__ import annotations

import functools
from types import ModuleType


@functools.lru_cache(maxsize=None)
def _load() -> tuple[ModuleType | None, str]:
    try:
        from kernelflow import _C  # type: ignore[attr-defined]
    except ImportError as e:  # a source checkout that was never built, or a broken build
        return None, f"kernelflow._C could not be imported ({e}); reinstall with `pip install .`"
    return _C, ""


def ext() -> ModuleType | None:
    """The extension module, or None when it is not built."""
    return _load()[0]


def ext_error() -> str:
    return _load()[1]


def require_ext() -> ModuleType:
    mod, err = _load()
    if mod is None:
        raise RuntimeError(err)
    return mod


@functools.lru_cache(maxsize=None)
def has_cuda_kernels() -> bool:
    mod = ext()
    return bool(mod is not None and mod.build_info()["cuda"])
