"""Shared test setup.

Without a GPU the Triton kernels run through the interpreter: TRITON_INTERPRET=1 must be set
before triton is first imported, so it is set here (tests never import triton at module level).
"""

from __future__ import annotations

import os

import pytest

try:
    import torch

    _HAS_CUDA = torch.cuda.is_available()
except Exception:  # pragma: no cover
    _HAS_CUDA = False

if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import kernelflow  # noqa: E402


def cpu_backends() -> list[str]:
    """Backends that run on CPU tensors here (triton only through the interpreter)."""
    return kernelflow.available_backends("cpu")


def cuda_backends() -> list[str]:
    return kernelflow.available_backends("cuda") if _HAS_CUDA else []


def all_device_backends() -> list[tuple[str, str]]:
    """(device, backend) pairs to run every op test on."""
    pairs = [("cpu", b) for b in cpu_backends()]
    pairs += [("cuda", b) for b in cuda_backends()]
    return pairs


def pytest_collection_modifyitems(config, items):
    if _HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=all_device_backends(), ids=lambda p: f"{p[0]}-{p[1]}")
def device_backend(request):
    return request.param
