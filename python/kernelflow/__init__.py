"""kernelflow: the tabular machine-learning workflow on compiled kernels.

Importing never needs a GPU or a driver; ``build_info()`` says what is compiled and usable.
"""

from __future__ import annotations

import importlib.util

__version__ = "0.1.0"

from kernelflow._backend import BACKENDS, BackendUnavailableError, available_backends, backend  # noqa: E402

_OPTIONAL = ("triton", "cupy", "numba", "onnx", "onnxruntime", "tensorrt", "pandas", "pyarrow", "polars", "dask")


def build_info() -> dict:
    """Version, compiled CUDA kernels and architectures, usable CUDA devices now, the CPU code
    path of every op family (``cpu_isa``: the shared portable / avx2 / avx512 level;
    ``code_paths``: {family: path}; ``cpu_isa_detected``: the best level this CPU supports), backends and which optional libraries are installed (found
    without importing them)."""
    from kernelflow._ext import ext, ext_error

    info: dict = {"version": __version__}
    C = ext()
    if C is None:
        info.update(extension=False, extension_error=ext_error(), cuda_kernels=False, cuda_architectures="",
                    cpu_isa=None, cpu_isa_detected=None, code_paths={})
    else:
        b = C.build_info()
        info.update(extension=True, cuda_kernels=bool(b["cuda"]), cuda_architectures=b["cuda_architectures"],
                    cuda_runtime_version=b["cuda_runtime_version"], openmp=bool(b["openmp"]),
                    op_families=list(b["families"]))
        # The CPU level every family runs at unless it picks its own path: a family's own
        # `<family>_cpu_path()` (int8_gemm's is `int8_cpu_path`, named by its first word) wins.
        shared = C.cpu_isa() if hasattr(C, "cpu_isa") else None
        info["cpu_isa"] = shared
        info["cpu_isa_detected"] = C.cpu_isa_detected() if hasattr(C, "cpu_isa_detected") else None
        paths = {}
        for fam in b["families"]:
            if fam == "cpu_isa":
                continue
            own = getattr(C, f"{fam}_cpu_path", None) or getattr(C, f"{fam.split('_')[0]}_cpu_path", None)
            paths[fam] = own() if own is not None else shared
        info["code_paths"] = paths
        n, why = C.cuda_device_status()
        info["cuda_devices_kernelflow"] = n
        if why:
            info["cuda_device_error"] = why
    import torch

    info["torch"] = torch.__version__
    info["torch_cuda_available"] = torch.cuda.is_available()
    info["backends_cpu"] = available_backends("cpu")
    info["backends_cuda"] = available_backends("cuda") if torch.cuda.is_available() else []
    info["optional"] = {name: importlib.util.find_spec(name) is not None for name in _OPTIONAL}
    info["tensorrt"] = _dist_version("tensorrt", "tensorrt-cu13", "tensorrt-cu12")  # None: not installed
    info["onnxruntime"] = _dist_version("onnxruntime", "onnxruntime-gpu")
    return info


def _dist_version(*names: str) -> str | None:
    """An installed distribution's version from its metadata (nothing is imported)."""
    import importlib.metadata as md

    for n in names:
        try:
            return md.version(n)
        except md.PackageNotFoundError:
            continue
    return None


def save(obj, path) -> None:
    """Save a fitted kernelflow object (safetensors + JSON; never pickle)."""
    from kernelflow.io import save as _save

    _save(obj, path)


def load(path):
    """Load an object saved by ``save``; a malformed or foreign file raises ValueError."""
    from kernelflow.io import load as _load

    return _load(path)


def _register_ops_on_first_use() -> None:
    """Make ``torch.ops.kernelflow.<op>`` define kernelflow's ops on first use.

    A saved ``torch.export`` program resolves its ops through ``torch.ops.kernelflow``: with
    this, ``import kernelflow`` is all a fresh process needs to load one, while ``import
    kernelflow`` stays as light as before (the op modules load when an op is first looked up).
    Where torch's op namespace cannot be extended this way, the ops are defined now."""
    import torch

    try:
        base = torch._ops._OpNamespace
        current = torch.ops.__dict__.get("kernelflow")
        if current is not None and type(current).__name__ == "_KernelflowOps":
            return

        class _KernelflowOps(base):
            __module__ = base.__module__  # torch names the ops' packets after it ("torch._ops.kernelflow")

            def __getattr__(self, op_name: str):
                if op_name.startswith("__"):
                    raise AttributeError(op_name)
                importlib.import_module("kernelflow.ops")  # defines every kernelflow:: op
                return base.__getattr__(self, op_name)

        ns = _KernelflowOps("kernelflow")
        ns.__dict__.update(current.__dict__ if current is not None else {})  # ops already resolved
        setattr(torch.ops, "kernelflow", ns)
    except Exception:  # pragma: no cover - another torch layout: define the ops eagerly
        importlib.import_module("kernelflow.ops")


def load_aoti(path, **kwargs):
    """Load an AOTInductor package (``torch._inductor.aoti_compile_and_package``) holding kernelflow
    ops: its compiled code finds the ops in torch's C++ dispatcher, so they are defined first."""
    import torch

    importlib.import_module("kernelflow.ops")
    return torch._inductor.aoti_load_package(str(path), **kwargs)


_register_ops_on_first_use()

_LAZY = {"Preprocessor": ("kernelflow.preprocessing.preprocessor", "Preprocessor"),
         "quantize": ("kernelflow.quant", "quantize"),
         "patch": ("kernelflow.nn.patch", "patch"),
         "Workflow": ("kernelflow.workflow", "Workflow")}


def __getattr__(name: str):
    # Submodules load on first use, so `import kernelflow` stays light.
    if name in ("ops", "preprocessing", "nn", "bench", "io", "quant", "train", "distill", "deploy",
                "monitor", "workflow"):
        return importlib.import_module(f"kernelflow.{name}")
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'kernelflow' has no attribute {name!r}")


__all__ = ["Preprocessor", "Workflow", "load_aoti", "patch", "quantize", "BACKENDS", "BackendUnavailableError", "available_backends", "backend", "build_info", "load", "save",
           "__version__"]
