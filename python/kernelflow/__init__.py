"""kernelflow: the tabular machine-learning workflow on compiled kernels.

Importing never needs a GPU or a driver; ``build_info()`` says what is compiled and usable.
"""

from __future__ import annotations

import importlib.util

__version__ = "0.1.0"

from kernelflow._backend import BACKENDS, BackendUnavailableError, available_backends, backend  # noqa: E402

_OPTIONAL = ("triton", "cupy", "numba", "onnx", "onnxruntime", "tensorrt", "pandas", "pyarrow", "polars", "dask")


def build_info() -> dict:
    """Version, compiled CUDA kernels and architectures, usable CUDA devices now, backends and
    which optional libraries are installed (found without importing them)."""
    from kernelflow._ext import ext, ext_error

    info: dict = {"version": __version__}
    C = ext()
    if C is None:
        info.update(extension=False, extension_error=ext_error(), cuda_kernels=False, cuda_architectures="")
    else:
        b = C.build_info()
        info.update(extension=True, cuda_kernels=bool(b["cuda"]), cuda_architectures=b["cuda_architectures"],
                    cuda_runtime_version=b["cuda_runtime_version"], openmp=bool(b["openmp"]),
                    op_families=list(b["families"]))
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
    return info


def save(obj, path) -> None:
    """Save a fitted kernelflow object (safetensors + JSON; never pickle)."""
    from kernelflow.io import save as _save

    _save(obj, path)


def load(path):
    """Load an object saved by ``save``; a malformed or foreign file raises ValueError."""
    from kernelflow.io import load as _load

    return _load(path)


_LAZY = {"Preprocessor": ("kernelflow.preprocessing.preprocessor", "Preprocessor"),
         "quantize": ("kernelflow.quant", "quantize"),
         "patch": ("kernelflow.nn.patch", "patch")}


def __getattr__(name: str):
    # Submodules load on first use, so `import kernelflow` stays light.
    if name in ("ops", "preprocessing", "nn", "bench", "io", "quant", "train", "distill"):
        return importlib.import_module(f"kernelflow.{name}")
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'kernelflow' has no attribute {name!r}")


__all__ = ["Preprocessor", "patch", "quantize", "BACKENDS", "BackendUnavailableError", "available_backends", "backend", "build_info", "load", "save",
           "__version__"]
