"""Every CPU code path of the int8 families (quantization rows, W8A8 GEMM, weight-only GEMM), each
forced on this CPU and compared with the exact integer / float64 references, at the tile edges of
each path (GEMV rows, partial panels, K not a multiple of 4, the weight-only panel-conversion
regime), with hostile values: -128 extremes, NaN / inf rows, ties, huge and denormal inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernelflow._ext import ext

pytestmark = pytest.mark.skipif(ext() is None, reason="the C++ extension is not built")

from kernelflow._array import mat  # noqa: E402
from kernelflow.nn.int8 import Int8Linear  # noqa: E402
from kernelflow.ops.int8_gemm import (  # noqa: E402
    int8_gemm,
    int8_gemm_reference,
    pack_weight,
    weight_only_gemm,
    weight_only_gemm_reference,
)
from kernelflow.ops.quant import (  # noqa: E402
    quantize_rows,
    quantize_rows_reference,
    quantize_static,
    quantize_static_reference,
)


def _isa_levels():
    order = ["portable", "avx2", "avx512"]
    return order[: order.index(ext().cpu_isa_detected()) + 1] if ext() is not None else []


def _int8_paths():
    return list(ext().int8_cpu_paths()) if ext() is not None else []


@pytest.fixture(params=_isa_levels())
def isa(request):
    """The process-wide level (KERNELFLOW_CPU_ISA / set_cpu_isa), forced for one test."""
    ext().set_cpu_isa(request.param)
    yield request.param
    ext().set_cpu_isa("auto")


@pytest.fixture(params=_int8_paths())
def int8_path(request):
    """The int8 family's own path (KERNELFLOW_INT8_PATH / set_int8_cpu_path), forced for one test."""
    ext().set_int8_cpu_path(request.param)
    yield request.param
    ext().set_int8_cpu_path("auto")


def same_q(got, ref):
    (q, s), (qr, sr) = got, ref
    assert torch.equal(q, qr)
    assert torch.equal(torch.isnan(s), torch.isnan(sr))
    assert torch.equal(torch.nan_to_num(s), torch.nan_to_num(sr))


# ---- path reports -----------------------------------------------------------------------------

def test_paths_follow_the_process_isa(isa):
    """Forcing the process level forces the quant and int8 paths (avx512 int8 also needs VNNI; the
    avx512 level runs amx where the CPU and OS allow tiles)."""
    assert ext().quant_cpu_path() == isa
    best512 = "amx" if "amx" in _int8_paths() else "avx512" if "avx512" in _int8_paths() else "avx2"
    want = {"portable": "portable", "avx2": "avx2", "avx512": best512}
    assert ext().int8_cpu_path() == want[isa]


def test_int8_override_beats_the_process_isa():
    ext().set_cpu_isa("portable")
    try:
        ext().set_int8_cpu_path(_int8_paths()[-1])
        assert ext().int8_cpu_path() == _int8_paths()[-1]
    finally:
        ext().set_int8_cpu_path("auto")
        ext().set_cpu_isa("auto")


# ---- quantization on every ISA level -------------------------------------------------------------

def _hostile_rows(K, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, K, generator=g) * 3
    x[1] = 0.0
    x[2] = 1e-35  # below MIN_ABSMAX
    x[3, K // 2] = float("nan")
    x[4, -1] = float("inf")  # in the vector tail for most K
    x[5, 0] = -float("inf")
    x[6] = torch.arange(K, dtype=torch.float32) - K / 2 + 0.5  # ties after scaling when absmax = 127 units
    x[7] = 3e38 * torch.sign(torch.randn(K, generator=g))  # huge, finite
    x[8] = 1e-40  # denormal, above MIN_ABSMAX
    x[9, 0] = 127.0
    x[9, 1:] = torch.randint(-254, 255, (K - 1,), generator=g).float() / 2 if K > 1 else x[9, 1:]  # exact .5 ties
    x[10, -1] = float("nan")  # NaN only in the last (tail) element
    return x


@pytest.mark.parametrize("K", [1, 7, 16, 17, 31, 32, 33, 100, 1030])
def test_quantize_rows_every_isa(isa, K):
    x = _hostile_rows(K, seed=K)
    same_q(quantize_rows(x, backend="cpu"), quantize_rows_reference(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_quantize_rows_16bit_and_strided_every_isa(isa, dtype):
    x = _hostile_rows(70, seed=3)
    xs = x.to(dtype)
    same_q(quantize_rows(xs, backend="cpu"), quantize_rows_reference(xs))
    xt = x.T.contiguous().T  # column-major: the copy path
    same_q(quantize_rows(xt, backend="cpu"), quantize_rows_reference(xt))
    xv = x[:, ::2]  # strided columns
    same_q(quantize_rows(xv, backend="cpu"), quantize_rows_reference(xv))


@pytest.mark.parametrize("K", [1, 15, 16, 33, 200])
def test_quantize_static_every_isa(isa, K):
    x = _hostile_rows(K, seed=K + 1)
    x[11, 0] = float("nan")
    for scale in (0.01, 1.0, 1e-30):  # 1e-30: almost everything saturates, +-inf included
        s = torch.tensor([scale])
        assert torch.equal(quantize_static(x, s, backend="cpu"), quantize_static_reference(x, s))


# ---- W8A8 on every int8 path -------------------------------------------------------------------

# M crosses the GEMV rows (<= 2 avx2, <= 4 avx512), the 4/8-row tiles and the 120-row blocks; N
# partial panels and panel groups; K not a multiple of 4.
W8A8_SHAPES = [(1, 4096 + 16, 9), (2, 33, 130), (3, 65, 5), (4, 64, 64), (5, 17, 257), (8, 130, 12), (9, 1, 3),
               (121, 47, 66), (250, 70, 33)]


@pytest.mark.parametrize("shape", W8A8_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_w8a8_exact_every_path(int8_path, shape):
    M, N, K = shape
    g = torch.Generator().manual_seed(M * 7 + N)
    xq = torch.randint(-128, 128, (M, K), generator=g, dtype=torch.int8)
    wq = torch.randint(-128, 128, (N, K), generator=g, dtype=torch.int8)
    xq[0] = -128
    wq[-1] = -128  # the largest sums, both signs
    wq[0] = 127
    acc = torch.empty(M, N, dtype=torch.int32)
    ext().int8_gemm_acc_cpu(mat(xq), mat(wq), acc.data_ptr())
    ref = xq.numpy().astype(np.int64) @ wq.numpy().astype(np.int64).T
    assert np.array_equal(acc.numpy().astype(np.int64), ref)
    # the fused epilogue: scales, bias, relu; NaN row scale propagates; equal to the reference bits
    rs = torch.rand(M, generator=g) * 0.01 + 1e-4
    cs = torch.rand(N, generator=g) * 0.01 + 1e-4
    b = torch.randn(N, generator=g)
    rs[-1] = float("nan")
    for act in ("none", "relu"):
        got = int8_gemm(xq, wq, rs, cs, b, act, backend="cpu")
        want = int8_gemm_reference(xq, wq, rs, cs, b, {"none": 0, "relu": 1}[act])
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(want))
    got = int8_gemm(xq, wq, rs, cs, None, "gelu", backend="cpu")
    want = int8_gemm_reference(xq, wq, rs, cs, None, 2)
    # erf from libm vs torch's differs by a few ulp (as in test_quant's RTOL)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert ((got - want).nan_to_num().abs() / want.nan_to_num().abs().clamp_min(1.0)).max() <= 2e-6
    for dt in (torch.float16, torch.bfloat16):
        got = int8_gemm(xq, wq, rs, cs, b, "none", out_dtype=dt, backend="cpu")
        want = int8_gemm_reference(xq, wq, rs, cs, b, 0, dt)
        assert torch.equal(torch.nan_to_num(got.float()), torch.nan_to_num(want.float()))


@pytest.mark.parametrize("M", [1, 2, 5, 64, 130])
def test_int8_linear_equals_integer_reference_every_path(int8_path, M):
    """Int8Linear (packed weights, dynamic scales) = quantize_rows_reference + the exact GEMM, with a
    NaN row and an all-zero row in the batch."""
    torch.manual_seed(M)
    lin = torch.nn.Linear(300, 70)
    q = Int8Linear.from_float(lin, backend="cpu", activation="relu")
    x = torch.randn(M, 300) * 2
    x[0, 3] = float("nan")
    if M > 1:
        x[1] = 0.0
    with torch.no_grad():
        got = q(x)
    xq, s = quantize_rows_reference(x)
    want = int8_gemm_reference(xq, q.weight_q, s, q.weight_scale, q.bias, 1)
    assert torch.isnan(got[0]).all()
    assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(want))


# ---- weight-only on every int8 path --------------------------------------------------------------

# M >= 12 converts each panel to fp32 once per block; K > 16384 streams the int8 panel instead.
WO_SHAPES = [(1, 33, 5), (3, 16, 64), (11, 40, 130), (12, 17, 257), (64, 65, 100), (130, 20, 9), (13, 9, 16390)]


@pytest.mark.parametrize("shape", WO_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_weight_only_every_path(int8_path, shape):
    M, N, K = shape
    g = torch.Generator().manual_seed(N + K)
    x = torch.randn(M, K, generator=g)
    wq = torch.randint(-128, 128, (N, K), generator=g, dtype=torch.int8)
    ws = torch.rand(N, generator=g) * 0.01 + 1e-3
    b = torch.randn(N, generator=g)
    x[-1, 0] = float("nan")  # propagates to the whole row
    ref = weight_only_gemm_reference(x, wq, ws, b, 1, torch.float64)
    for got in (weight_only_gemm(x, wq, ws, b, "relu", backend="cpu"),
                weight_only_gemm(x.T.contiguous().T, wq, ws, b, "relu", backend="cpu")):  # strided x
        assert torch.equal(torch.isnan(got), torch.isnan(ref))
        fin = torch.isfinite(ref)
        # fp32 sums in a different order: error relative to the sum of |terms|
        bound = (x.abs().double().nan_to_num() @ wq.double().abs().T) * ws.double()[None, :]
        if fin.any():  # M = 1: the NaN row is all there is
            err = ((got.double() - ref).abs()[fin] / (bound[fin] + 1.0)).max()
            assert err <= 1e-6 * max(1.0, K / 1000), float(err)


def test_weight_only_16bit_in_and_out_every_path(int8_path):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(20, 70, generator=g)
    wq = torch.randint(-127, 128, (33, 70), generator=g, dtype=torch.int8)
    ws = torch.rand(33, generator=g) * 0.01 + 1e-3
    packed = pack_weight(wq)
    assert packed is not None
    for dt in (torch.float16, torch.bfloat16):
        xs = x.to(dt)
        ref = weight_only_gemm_reference(xs, wq, ws, None, 0, torch.float64)
        got = weight_only_gemm(xs, wq, ws, None, "none", backend="cpu")
        assert got.dtype == dt
        tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}[dt]
        assert ((got.double() - ref).abs() / ref.abs().clamp_min(1.0)).max() <= tol
