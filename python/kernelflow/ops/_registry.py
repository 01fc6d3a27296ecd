"""One contract per op, one function per backend.

An op is declared once by its signature: ``@kernel_op("kernelflow::<name>", mutates_args=...)``
on a function whose annotations give the ``torch.library`` schema and whose last parameter is
``backend: str`` (its body is only a docstring). The result is the ``torch.library`` custom op
itself (``register_fake``, ``register_autograd``, ``opcheck``, ``torch.compile`` and
``torch.export`` work on it as on any custom op) with one more method, ``kernel(*backends)``:

    @_column_stats_op.kernel("torch")      # the float64 reference
    def _(k, x):
        return column_stats_reference(x)

    @_column_stats_op.kernel("cpu")
    def _(k, x):
        out = torch.empty((6, x.shape[1]), dtype=torch.float64)
        k.C.column_stats_cpu(mat(x), out.data_ptr())
        return out

Each kernel takes the op's arguments without ``backend``, after a ``Launch`` ``k`` that does what
every backend needs once: ``k.C`` the compiled extension (``require_ext``: a clear error when it
is not built), ``k.stream`` the current CUDA stream's handle on the data's device, ``k.triton`` the
family's Triton module (imported on first use, so ``import kernelflow`` never imports triton),
``k.backend`` the backend name (for kernels that call other ops), and ``k.call(name, *args)``,
which runs ``_C.<name>_cpu(*args)`` or ``_C.<name>_cuda(*args, stream)``, so one function serves
both compiled backends when their launchers match. CUDA kernels run inside
``torch.cuda.device(<data's device>)``. Adding a backend to an op is one such function.

``op.resolve(backend, device)`` is the public wrappers' resolution: ``_backend.resolve`` (the
argument, the ``with kernelflow.backend(...)`` block, ``KERNELFLOW_BACKEND``, auto) restricted to
the backends the op registered; it is a trace-time constant under ``torch.compile``.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Callable, Iterable

import torch

from kernelflow import _backend
from kernelflow._ext import require_ext


class Launch:
    """What a backend kernel needs beyond the op's arguments (see the module docstring)."""

    __slots__ = ("backend", "device", "_triton_module")

    def __init__(self, backend: str, device: torch.device, triton_module: str | None):
        self.backend = backend
        self.device = device
        self._triton_module = triton_module

    @property
    def C(self) -> ModuleType:
        return require_ext()

    @property
    def stream(self) -> int:
        return torch.cuda.current_stream(self.device).cuda_stream

    def call(self, name: str, *args):
        """The compiled launcher ``<name>_cpu(*args)`` or ``<name>_cuda(*args, stream)``: the CPU and
        CUDA launchers of a family take the same arguments, the CUDA one the stream last."""
        if self.backend == "cuda":
            return getattr(self.C, f"{name}_cuda")(*args, self.stream)
        if self.backend == "cpu":
            return getattr(self.C, f"{name}_cpu")(*args)
        raise ValueError(f"k.call runs compiled kernels (cpu, cuda), not {self.backend!r}")

    @property
    def triton(self) -> ModuleType:
        if self._triton_module is None:
            raise ValueError("this op declared no Triton module")
        return importlib.import_module(self._triton_module)


def _device_of(args: tuple) -> torch.device:
    """The device of the first tensor argument (tensor lists included): where the op runs."""
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device
        if isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor):
            return a[0].device
    return torch.device("cpu")


class KernelTable:
    """The backend -> kernel table of one op and the dispatch through it: ``table(*args, backend)``.
    Every ``kernel_op`` has one (``op.kernels``); a launcher shared by several ops (the norm
    family's forward and backward) is a table of its own."""

    def __init__(self, name: str, triton: str | None = None):
        self.name = name
        self.triton_module = triton
        self.table: dict[str, Callable] = {}
        self.backends: tuple[str, ...] = ()

    def kernel(self, *backends: str) -> Callable[[Callable], Callable]:
        """Decorator: the function is this op's kernel for each of ``backends``."""
        for b in backends:
            if b not in _backend.BACKENDS:
                raise ValueError(f"backend must be one of {_backend.BACKENDS}, got {b!r}")

        def deco(fn: Callable) -> Callable:
            for b in backends:
                if b in self.table:
                    raise ValueError(f"{self.name}: a {b!r} kernel is already registered")
                self.table[b] = fn
            self.backends = tuple(b for b in _backend.BACKENDS if b in self.table)
            return fn

        return deco

    def __call__(self, *args):
        *args, backend = args
        fn = self.table.get(backend)
        if fn is None:
            raise _backend.BackendUnavailableError(
                f"{self.name} has no {backend!r} kernel (it has {', '.join(self.backends) or 'none'})")
        device = _device_of(args)
        k = Launch(backend, device, self.triton_module)
        if backend == "cuda":
            with torch.cuda.device(device):
                return fn(k, *args)
        return fn(k, *args)


def kernel_op(name: str, *, mutates_args: Iterable[str] | str = (), triton: str | None = None):
    """Declare the custom op ``name`` from a signature function (see the module docstring).
    ``triton``: the module holding its Triton launchers (``k.triton``)."""

    def deco(signature: Callable):
        schema = torch.library.infer_schema(signature, mutates_args=mutates_args)
        params = list(inspect.signature(signature).parameters)
        if not params or params[-1] != "backend":
            raise TypeError(f"{name}: the last parameter must be `backend: str`, got {params}")
        kernels = KernelTable(name, triton)

        def impl(*args):
            return kernels(*args)

        impl.__name__ = impl.__qualname__ = signature.__name__
        impl.__doc__ = signature.__doc__
        impl.__module__ = signature.__module__
        op = torch.library.custom_op(name, impl, mutates_args=mutates_args, schema=schema)
        op.kernel = kernels.kernel
        op.kernels = kernels
        op.resolve = lambda requested, device: resolve(requested, device, kernels.backends)
        return op

    return deco


def resolve(requested: str | None, device: torch.device, registered: tuple[str, ...]) -> str:
    """``_backend.resolve`` among the ``registered`` backends (see ``_backend.resolve``)."""
    return _backend.resolve(requested, device, registered)
