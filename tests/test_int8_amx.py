"""The amx path of the CPU int8 GEMMs (csrc/cpu/int8_amx.cpp). W8A8 (AMX-INT8) at its tile edges:
16-row A tiles padded with zero rows, 2 x 2 C tiles with a lone row tile or panel at the edges, K
padded to 64, the 256-row chunks and 4-panel groups of the driver, the switch to the VNNI kernels
below 8 rows; every result bit-exact against the integer reference. Weight-only (AMX-INT8 over x's
fixed-point digit rows) through Int8Linear and 16-bit x here; its numerics, on hostile data and bit
for bit against the VNNI digits, in test_int8_wo_digits.py. Skipped where the CPU or OS has no AMX."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from kernelflow._ext import ext

pytestmark = pytest.mark.skipif(ext() is None, reason="the C++ extension is not built")

from kernelflow._array import mat  # noqa: E402
from kernelflow.nn.int8 import Int8Linear  # noqa: E402
from kernelflow.ops.int8_gemm import cpu_path, int8_gemm, int8_gemm_reference, pack_weight, set_cpu_path  # noqa: E402
from kernelflow.ops.quant import quantize_rows_reference  # noqa: E402

HAS_AMX = ext() is not None and "amx" in ext().int8_cpu_paths()
needs_amx = pytest.mark.skipif(not HAS_AMX, reason="no AMX-INT8 on this CPU / OS")


@pytest.fixture
def amx():
    set_cpu_path("amx")
    yield
    set_cpu_path("auto")


def _exact(xq, wq):
    return xq.numpy().astype(np.int64) @ wq.numpy().astype(np.int64).T


# (M, N, K): M around the VNNI switch (7 / 8), one and two 16-row tiles, a partial 32-row block,
# the 256-row chunk edge; N one panel, an odd panel count, a partial panel, a partial group of 4;
# K below, at and above 64, not a multiple of 4.
AMX_SHAPES = [(7, 16, 64), (8, 17, 65), (15, 33, 1), (16, 32, 128), (17, 48, 63), (31, 80, 130), (32, 16, 200),
              (33, 100, 4), (255, 70, 129), (257, 65, 64), (300, 130, 300)]


@needs_amx
@pytest.mark.parametrize("shape", AMX_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_amx_exact_int32(amx, shape):
    M, N, K = shape
    g = torch.Generator().manual_seed(M * 31 + N + K)
    xq = torch.randint(-128, 128, (M, K), generator=g, dtype=torch.int8)
    wq = torch.randint(-128, 128, (N, K), generator=g, dtype=torch.int8)
    xq[0] = -128  # the extreme sums of both signs: -128 * -128 and -128 * 127 over all of K
    wq[0] = -128
    wq[-1] = 127
    acc = torch.empty(M, N, dtype=torch.int32)
    ext().int8_gemm_acc_cpu(mat(xq), mat(wq), acc.data_ptr())
    assert np.array_equal(acc.numpy().astype(np.int64), _exact(xq, wq))


@needs_amx
def test_amx_largest_k_exact(amx):
    """K = 131071 (INT8_GEMM_MAX_K) of -128 x -128: the largest int32 sum, 2^31 - 2^14."""
    K = ext().INT8_GEMM_MAX_K
    xq = torch.full((9, K), -128, dtype=torch.int8)
    wq = torch.full((3, K), -128, dtype=torch.int8)
    wq[1] = 127
    acc = torch.empty(9, 3, dtype=torch.int32)
    ext().int8_gemm_acc_cpu(mat(xq), mat(wq), acc.data_ptr())
    assert np.array_equal(acc.numpy().astype(np.int64), _exact(xq, wq))


@needs_amx
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_amx_fused_epilogue_bits(amx, out_dtype):
    """Scales, bias, relu / gelu on the amx path equal the reference (the avx512 epilogue), with a
    NaN and an inf row scale; packed and per-call-packed weights agree."""
    M, N, K = 40, 50, 96
    g = torch.Generator().manual_seed(1)
    xq = torch.randint(-128, 128, (M, K), generator=g, dtype=torch.int8)
    wq = torch.randint(-128, 128, (N, K), generator=g, dtype=torch.int8)
    rs = torch.rand(M, generator=g) * 0.01
    cs = torch.rand(N, generator=g) * 0.01
    b = torch.randn(N, generator=g)
    rs[3], rs[20] = float("nan"), float("inf")
    for act, code in (("none", 0), ("relu", 1)):
        got = int8_gemm(xq, wq, rs, cs, b, act, out_dtype=out_dtype, backend="cpu")
        want = int8_gemm_reference(xq, wq, rs, cs, b, code, out_dtype)
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        assert torch.equal(torch.nan_to_num(got.float()), torch.nan_to_num(want.float()))
    rs[20] = 1e-3  # gelu(+-inf): torch gives NaN, the kernels the limits (inf, NaN); not this test's subject
    out = torch.empty(M, N)
    pk = pack_weight(wq)
    ext().int8_gemm_cpu(mat(xq), mat(wq), pk.data_ptr(), pk.numel(), rs.data_ptr(), cs.data_ptr(), b.data_ptr(), 2,
                        mat(out))
    want = int8_gemm_reference(xq, wq, rs, cs, b, 2)
    assert torch.equal(torch.isnan(out), torch.isnan(want))
    assert ((out - want).nan_to_num().abs() / want.nan_to_num().abs().clamp_min(1.0)).max() <= 2e-6  # libm erf


@needs_amx
@pytest.mark.parametrize("M", [1, 8, 64, 300])
def test_amx_int8_linear_equals_integer_reference(amx, M):
    torch.manual_seed(M)
    q = Int8Linear.from_float(torch.nn.Linear(200, 90), backend="cpu")
    x = torch.randn(M, 200) * 3
    x[-1, 5] = float("inf")  # its row scale is inf: the whole row NaN, as in the reference
    with torch.no_grad():
        got = q(x)
    xq, s = quantize_rows_reference(x)
    want = int8_gemm_reference(xq, q.weight_q, s, q.weight_scale, q.bias, 0)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(want))


@needs_amx
def test_amx_is_auto_at_the_avx512_level_and_forcing_wins():
    assert cpu_path() == "amx"
    set_cpu_path("avx512")
    try:
        assert cpu_path() == "avx512"
    finally:
        set_cpu_path("auto")
    ext().set_cpu_isa("avx2")  # the process level caps the auto choice
    try:
        assert cpu_path() == "avx2"
    finally:
        ext().set_cpu_isa("auto")


def test_bad_path_names_raise():
    with pytest.raises(ValueError, match="amx"):
        set_cpu_path("tiles")
    with pytest.raises(TypeError, match="path"):
        set_cpu_path(3)
    if not HAS_AMX:
        with pytest.raises(ValueError, match="'amx' is not supported"):
            set_cpu_path("amx")


@needs_amx
def test_env_forces_amx_and_vnni_per_process():
    code = "from kernelflow._ext import ext; print(ext().int8_cpu_path())"
    for want in ("amx", "avx512"):
        env = {**os.environ, "KERNELFLOW_INT8_PATH": want}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == want


# ---- weight-only on AMX-INT8 (x's fixed-point digit rows; their numerics: test_int8_wo_digits.py) ----

def _wo(x, wq, ws, b=None, act="none"):
    from kernelflow.ops.int8_gemm import weight_only_gemm  # noqa: PLC0415

    return weight_only_gemm(x, wq, ws, b, act, backend="cpu")


def _wo_case(M, N, K, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, K, generator=g)
    wq = torch.randint(-128, 128, (N, K), generator=g, dtype=torch.int8)
    ws = torch.rand(N, generator=g) * 0.01 + 1e-3
    return g, x, wq, ws


def _non_finite_case(M, N, K, seed):
    """_wo_case with +inf in row 0 (over a zero weight of column 0: inf * 0 = NaN), -inf in row 1
    and NaN in row 2."""
    g, x, wq, ws = _wo_case(M, N, K, seed)
    wq[0, 5] = 0
    x[0, 5] = float("inf")
    x[1, 7] = -float("inf")
    x[2, 0] = float("nan")
    return g, x, wq, ws


@needs_amx
@pytest.mark.parametrize("M", [3, 4, 64])
def test_amx_weight_only_int8_linear_and_16bit(amx, M):
    """Int8Linear weight-only on the amx path (both sides of the 4-row switch) against float64, and
    float16 / bfloat16 inputs and outputs."""
    torch.manual_seed(M)
    lin = torch.nn.Linear(200, 90)
    q = Int8Linear.from_float(lin, mode="weight_only", backend="cpu", activation="relu")
    x = torch.randn(M, 200)
    with torch.no_grad():
        got = q(x)
    from kernelflow.ops.int8_gemm import weight_only_gemm_reference  # noqa: PLC0415

    ref = weight_only_gemm_reference(x, q.weight_q, q.weight_scale, q.bias, 1, torch.float64)
    assert float((got.double() - ref).abs().max() / ref.abs().max()) <= 1e-6
    for dt, tol in ((torch.float16, 2e-3), (torch.bfloat16, 1e-2)):
        xs = x.to(dt)
        got = _wo(xs, q.weight_q, q.weight_scale)
        ref = weight_only_gemm_reference(xs, q.weight_q, q.weight_scale, None, 0, torch.float64)
        assert got.dtype == dt
        assert ((got.double() - ref).abs() / ref.abs().clamp_min(1.0)).max() <= tol


@needs_amx
@pytest.mark.parametrize("M", [3, 4, 5, 11, 31, 32, 33, 63, 64, 65, 97, 200])
def test_amx_digits_equal_vnni_digits_bitwise(amx, M):
    """The AMX tiles and the VNNI kernels sum the same digit rows exactly, so every output bit
    agrees: across the 4-row switch, the 32-row steps (96 digit rows), the 64-row chunks, a partial
    last digit tile, an odd panel count (N = 48: a lone last panel) and K past one tile block."""
    g, x, wq, ws = _wo_case(M, 48, 200, seed=M)
    x[M // 2] *= 1e20
    b = torch.randn(48, generator=g)
    for act in ("none", "relu", "gelu"):
        got = _wo(x, wq, ws, b, act)
        set_cpu_path("avx512")
        want = _wo(x, wq, ws, b, act)
        set_cpu_path("amx")
        assert torch.equal(got, want), (act, float((got - want).abs().max()))
