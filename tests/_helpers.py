"""What the op tests share: hostile random inputs, strided layouts, tolerance tables, the
comparisons against float64 references, the backend x case table and opcheck over backends.

A new op's test is a table: ``@backend_cases(CASES)`` runs every case on every (device, backend)
pair the machine has (``conftest.all_device_backends``), the case builds its inputs with
``hostile_matrix`` / ``strided``, and ``assert_close`` compares against the op's float64
reference with a tolerance from the table below.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pytest
import torch

import kernelflow

# ---------------------------------------------------------------------------------- tolerances

# Output rounding against a float64 reference cast to the output dtype (relative to max(|ref|, 1)):
# float32 arithmetic is one or two roundings (~1e-7); 16-bit outputs may differ by one unit in the
# last place, because kernels round fp32 -> 16 bit where the reference rounds fp64 -> 16 bit
# (bfloat16 2^-8; the Triton interpreter truncates instead of rounding, hence 2^-7).
OUT_RTOL = {torch.float64: 1e-15, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}

# float64 statistics of float32 / float64 input (relative to max(|ref|, 1)): float64 input is
# summed in float64 everywhere; float32 input is summarised per thread / tile in fp32 on the GPU
# and Triton paths before the float64 merge (about 1e-6 relative over thousands of values).
STATS_RTOL = {torch.float64: 1e-10, torch.float32: 2e-5}

FLOAT_OUTS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
FLOAT_INS = (torch.float32, torch.float64)


# ---------------------------------------------------------------------------------- inputs

def hostile_matrix(rows: int, cols: int, dtype: torch.dtype = torch.float32, seed: int = 0, *, scale: float = 1.0,
                   shift: float = 0.0, nan: float = 0.1, inf: float = 0.02, ties: bool = False) -> torch.Tensor:
    """[rows, cols] of N(shift, scale) values (rounded to halves with ``ties``) with a fraction
    ``nan`` of NaN and ``inf`` each of +inf and -inf, reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g, dtype=torch.float64) * scale + shift
    if ties:
        x = torch.round(x * 2) / 2
    x = x.to(dtype)
    if rows and cols:
        x[torch.rand(rows, cols, generator=g) < nan] = float("nan")
        x[torch.rand(rows, cols, generator=g) < inf] = float("inf")
        x[torch.rand(rows, cols, generator=g) < inf] = float("-inf")
    return x


# non-contiguous views of a base matrix [rows, cols] every kernel must read correctly
STRIDED_LAYOUTS = ("fortran", "strided_rows", "strided_cols", "transposed_view")


def strided(base: torch.Tensor, layout: str, step: int = 2, width: int | None = None) -> torch.Tensor:
    """A non-contiguous view of ``base``: column-major copy, every 3rd row, every ``step``-th column,
    or the transpose of its first ``width`` rows (default: as many rows as base has columns)."""
    if layout == "fortran":
        v = base.t().contiguous().t()
    elif layout == "strided_rows":
        v = base[::3]
    elif layout == "strided_cols":
        v = base[:, ::step]
    elif layout == "transposed_view":
        v = base[:(width or base.shape[1]), :].t()
    else:
        raise ValueError(f"layout must be one of {STRIDED_LAYOUTS}, got {layout!r}")
    assert not v.is_contiguous()
    return v


def interpreted(device: str, backend: str) -> bool:
    """Whether this pair runs the Triton interpreter (keep its grids tiny)."""
    return backend == "triton" and device == "cpu"


# ---------------------------------------------------------------------------------- comparisons

def max_rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    """max |got - ref| / max(|ref|, 1) over the entries where ref is finite (0 when none)."""
    g, r = got.detach().double().cpu(), ref.detach().double().cpu()
    fin = torch.isfinite(r)
    if not fin.any():
        return 0.0
    return float(((g[fin] - r[fin]).abs() / r[fin].abs().clamp_min(1.0)).max())


def assert_close(got: torch.Tensor, ref: torch.Tensor, rtol: float, *, dtype: torch.dtype | None = None) -> None:
    """Same shape (and ``dtype`` when given), NaN where ref is NaN, the same infinities, and finite
    entries within ``rtol`` relative to max(|ref|, 1)."""
    assert got.shape == ref.shape, (tuple(got.shape), tuple(ref.shape))
    if dtype is not None:
        assert got.dtype == dtype, (got.dtype, dtype)
    g, r = got.detach().double().cpu(), ref.detach().double().cpu()
    assert torch.equal(torch.isnan(g), torch.isnan(r)), "NaN positions differ"
    inf = torch.isinf(r)
    assert torch.equal(g[inf], r[inf]), "infinities differ"
    err = max_rel_err(g, r)
    assert err <= rtol, f"max relative error {err:.3g} > {rtol:.3g}"


def assert_stats_close(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    """A [6, cols] float64 statistics block (``ops.stats.STAT_ROWS``): count, NaN count, min and max
    exact; mean and M2 within ``STATS_RTOL[dtype]``."""
    got, ref = got.cpu(), ref.cpu()
    assert got.shape == ref.shape and got.dtype == torch.float64
    for i in (0, 1, 4, 5):
        assert torch.equal(got[i], ref[i]), (i, got[i], ref[i])
    for i in (2, 3):
        err = max_rel_err(got[i], ref[i]) if ref.shape[1] else 0.0
        assert err <= STATS_RTOL[dtype], (i, err)


# ---------------------------------------------------------------------------------- tables

def backend_cases(cases: Sequence[Any] | dict[str, Any], name: str = "case") -> Callable:
    """Parametrize a test over ``cases`` (a list, or a dict id -> case); combined with the
    ``device_backend`` fixture this is the backends x cases table."""
    if isinstance(cases, dict):
        return pytest.mark.parametrize(name, list(cases.values()), ids=list(cases))
    return pytest.mark.parametrize(name, list(cases))


def registered_backends(op, device: str = "cpu") -> list[str]:
    """The backends ``op`` (a ``kernel_op``) has kernels for that run on ``device`` here."""
    have = kernelflow.available_backends(device)
    return [b for b in op.kernels.backends if b in have]


def opcheck_backends(op, args: tuple | Callable[[], tuple], backends: Iterable[str] = ("torch", "cpu"),
                     **kwargs) -> None:
    """``torch.library.opcheck`` of ``op`` with ``args`` + (backend,) for each backend available on
    the CPU (``args`` may be a function building fresh arguments per backend)."""
    have = kernelflow.available_backends("cpu")
    for backend in backends:
        if backend not in have:
            continue
        a = args() if callable(args) else args
        torch.library.opcheck(op, (*a, backend), **kwargs)


def numpy_nanquantile(x: torch.Tensor, q) -> np.ndarray:
    """numpy.nanquantile(axis=0) of the float64 values, [len(q), cols]; all-NaN and empty -> NaN."""
    import warnings

    xd = x.detach().cpu().to(torch.float64).numpy()
    if xd.shape[0] == 0 or xd.shape[1] == 0:
        return np.full((len(q), xd.shape[1]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(xd, np.asarray(q, dtype=np.float64), axis=0)
