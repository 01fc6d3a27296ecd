"""Importing kernelflow must not pull in the torch.compile machinery (torch._dynamo: ~2 s) or
other heavy optional modules; timing is measured by benchmarks/bench_import.py, not asserted."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

HEAVY = ("torch._dynamo", "torch._inductor", "triton", "onnx", "onnxruntime", "matplotlib", "numba")


def test_import_preprocessing_stays_light():
    code = ("import sys, kernelflow, kernelflow.preprocessing, kernelflow.nn; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("TRITON_INTERPRET", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_resolve_carries_the_constant_result_mark():
    """_backend.resolve sets by hand the attribute torch.compiler.assume_constant_result sets."""
    from kernelflow import _backend

    def f():
        return 1

    marked = torch.compiler.assume_constant_result(f)
    attrs = {k for k in vars(marked) if k.startswith("_dynamo")}
    assert attrs and all(getattr(_backend.resolve, k, None) == getattr(marked, k) for k in attrs)
