"""The AMX-INT8 W8A8 path (csrc/cpu/int8_amx.cpp) at its tile edges: 16-row A tiles padded with
zero rows, 2 x 2 C tiles with a lone row tile or panel at the edges, K padded to 64, the 256-row
chunks and 4-panel groups of the driver, and the switch to the VNNI kernels below 8 rows; every
result bit-exact against the integer reference. Skipped where the CPU or OS has no AMX-INT8."""

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
