"""Weight-only int8 on the avx512 and amx paths (csrc/cpu/int8_weight_only.cpp, wo_digits_driver
and wo_amx_digits_driver): x in 24-bit fixed point per row, split into three u8 digits, three exact
int8 products (VNNI, or AMX-INT8 tiles from 4 rows on) combined in int64. Checked against float64
with the bound that construction gives (the rounding of x to 24 bits relative to its row's largest
|x|, then one fp32 rounding of the sum and the epilogue's), against the fp32 FMA kernels, bit for
bit between the two paths, and on hostile data: mixed magnitudes, subnormal and huge rows, zero
rows, NaN and inf (which send the call to the FMA kernels), K at the digits' limit and past it.
Every test runs on each path this CPU has; skipped where it has no AVX512-VNNI."""

from __future__ import annotations

import pytest
import torch

from kernelflow._ext import ext

pytestmark = pytest.mark.skipif(ext() is None or "avx512" not in ext().int8_cpu_paths(),
                                reason="no AVX512-VNNI int8 path on this CPU")

from kernelflow.nn.int8 import Int8Linear  # noqa: E402
from kernelflow.ops.int8_gemm import set_cpu_path, weight_only_gemm_reference  # noqa: E402
from test_int8_amx import _non_finite_case, _wo  # noqa: E402
from test_int8_amx import _wo_case as _case  # noqa: E402

F32_EPS = 2.0 ** -24


HAS_AMX = ext() is not None and "amx" in ext().int8_cpu_paths()


@pytest.fixture(autouse=True, params=["avx512", "amx"])
def digits_path(request):
    if request.param == "amx" and not HAS_AMX:
        pytest.skip("no AMX-INT8 on this CPU / OS")
    set_cpu_path(request.param)
    yield request.param
    set_cpu_path("auto")


def _digits_bound(x, wq, ws, ref):
    """|got - ref| for fixed point per row: x rounded to 2^(e - 24) with max |x_m| < 2^e, the exact
    integer sum rounded once to fp32, then * ws (and + bias) in fp32."""
    e = torch.frexp(x.abs().double().amax(dim=1)).exponent.double()  # max |x_m| < 2^e (0 for a zero row)
    fixed = torch.ldexp(torch.ones_like(e), e - 24)[:, None] * wq.double().abs().sum(dim=1)[None, :] * ws.double()
    return fixed * (1 + 1e-6) + 3 * F32_EPS * ref.abs() + 1e-300


@pytest.mark.parametrize("shape", [(1, 17, 5), (2, 17, 5), (3, 16, 64), (7, 40, 130), (16, 65, 257), (41, 33, 1030),
                                   (130, 20, 9), (64, 64, 4096)], ids=lambda s: "x".join(map(str, s)))
def test_digits_within_their_fixed_point_bound(digits_path, shape):
    M, N, K = shape
    g, x, wq, ws = _case(M, N, K, seed=M * N + K)
    b = torch.randn(N, generator=g)
    got = _wo(x, wq, ws, b)
    ref = weight_only_gemm_reference(x, wq, ws, b, 0, torch.float64)
    nob = weight_only_gemm_reference(x, wq, ws, None, 0, torch.float64)
    bound = _digits_bound(x, wq, ws, nob) + 2 * F32_EPS * ref.abs()
    assert bool(((got.double() - ref).abs() <= bound).all()), float(((got.double() - ref).abs() / bound).max())
    # and an fp32 GEMM's tolerance against the FMA kernels of the avx2 path
    set_cpu_path("avx2")
    fma = _wo(x, wq, ws, b)
    if digits_path == "amx":  # the tiles (from 4 rows on) give the VNNI digits' bits
        set_cpu_path("avx512")
        assert torch.equal(_wo(x, wq, ws, b), got)
    scale = (x.abs().double() @ wq.double().abs().T) * ws.double()[None, :] + b.double().abs()[None, :]
    assert float(((got.double() - fma.double()).abs() / scale).max()) <= 2e-6 * max(1.0, K / 1000)


def test_digits_hostile_magnitudes():
    """Rows of 1e-30 next to 1e30, a whole row of subnormals (exact in fixed point: no flush to
    zero), FLT_MAX (finite: the top digit is clamped, never rounded up past 2^23), zero rows."""
    M, N, K = 24, 21, 1030
    g, x, wq, ws = _case(M, N, K, seed=11)
    x[1] *= torch.logspace(-30, 30, K)
    x[2] *= 1e30
    x[3] *= 1e-30
    x[4] = 1e-40
    x[4, ::3] = -3e-45
    x[5] = 0.0
    x[6] = 0.0
    x[6, 9] = 3.4028234663852886e38
    wq[:, 9] = 1
    x[7] = torch.finfo(torch.float32).tiny
    got = _wo(x, wq, ws)
    ref = weight_only_gemm_reference(x, wq, ws, None, 0, torch.float64)
    assert torch.isfinite(got).all()
    assert (got[5] == 0).all()
    torch.testing.assert_close(got[6].double(), 3.4028234663852886e38 * ws.double(), rtol=1e-6, atol=0)
    assert bool(((got.double() - ref).abs() <= _digits_bound(x, wq, ws, ref)).all())
    assert (got[4] != 0).any()  # the subnormal row is not flushed


def test_digits_non_finite_falls_back_to_fma():
    g, x, wq, ws = _non_finite_case(20, 19, 130, seed=3)
    got = _wo(x, wq, ws)
    ref = weight_only_gemm_reference(x, wq, ws, None, 0, torch.float64)
    assert torch.equal(torch.isnan(got), torch.isnan(ref)) and torch.equal(torch.isinf(got), torch.isinf(ref))
    assert torch.equal(torch.sign(got[torch.isinf(got)]), torch.sign(ref[torch.isinf(ref)].float()))
    fin = torch.isfinite(ref)
    scale = (x.abs().double().nan_to_num() @ wq.double().abs().T) * ws.double()[None, :]
    assert float(((got.double() - ref).abs()[fin] / scale[fin]).max()) <= 1e-6


@pytest.mark.parametrize("K", [65536, 65537])
def test_digits_k_limit(K):
    """Kp <= 65536 keeps every digit sum inside int32; past it the FMA kernels run. x = 1 - 2^-24
    rounds to 2^23, is clamped to 2^23 - 1, so every digit is 255: with w = -128 each digit sum is
    -255 * 128 * K, the int32 edge at K = 65536."""
    g, x, wq, ws = _case(4, 16, K, seed=K)  # 4 rows: on tiles on the amx path
    wq[:] = -128
    x = torch.full_like(x, 1 - 2.0 ** -24)
    got = _wo(x, wq, ws)
    ref = weight_only_gemm_reference(x, wq, ws, None, 0, torch.float64)
    assert float(((got.double() - ref).abs() / ref.abs()).max()) <= 1e-6 * K / 1000


@pytest.mark.parametrize("act", ["none", "relu", "gelu"])
def test_digits_through_int8_linear_16bit_and_packed(act):
    torch.manual_seed(0)
    lin = torch.nn.Linear(300, 70)
    q = Int8Linear.from_float(lin, mode="weight_only", backend="cpu", activation=act)
    x = torch.randn(33, 300)
    with torch.no_grad():
        got = q(x)
        ref = weight_only_gemm_reference(x, q.weight_q, q.weight_scale, q.bias, {"none": 0, "relu": 1, "gelu": 2}[act],
                                         torch.float64)
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)  # fp32 output of |y| ~ 1
        for dt, tol in ((torch.float16, 2e-3), (torch.bfloat16, 1e-2)):  # the layer's packed weights, 16-bit x
            xs = x.to(dt)
            got16 = q(xs)
            ref16 = weight_only_gemm_reference(xs, q.weight_q, q.weight_scale, q.bias,
                                               {"none": 0, "relu": 1, "gelu": 2}[act], torch.float64)
            assert got16.dtype == dt
            assert float(((got16.double() - ref16).abs() / ref16.abs().clamp_min(1.0)).max()) <= tol

