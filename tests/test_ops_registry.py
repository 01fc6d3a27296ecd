"""The op registry (kernelflow.ops._registry), backend resolution among registered kernels, the
one dtype-name map and the layout module split."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
import torch

import kernelflow
from _helpers import OUT_RTOL, STATS_RTOL, assert_close, backend_cases, hostile_matrix
from kernelflow import BackendUnavailableError, ops
from kernelflow._array import mat
from kernelflow._dtypes import CODES, FLOATS, LOW_FLOATS, NAMES, as_dtype
from kernelflow.ops._registry import KernelTable, kernel_op

OPS_DIR = pathlib.Path(ops.__file__).parent


def _kernel_ops():
    """Every kernelflow custom op declared through the registry, by module."""
    import importlib

    found = {}
    for path in sorted(OPS_DIR.glob("*.py")):
        mod = importlib.import_module(f"kernelflow.ops.{path.stem}")
        for v in vars(mod).values():
            if hasattr(v, "kernels") and isinstance(getattr(v, "kernels"), KernelTable):
                found[v.kernels.name] = v
    return found


def test_every_op_has_a_reference_and_a_cpu_kernel():
    found = _kernel_ops()
    assert len(found) == 22, sorted(found)
    for name, op in found.items():
        assert name.startswith("kernelflow::"), name
        assert {"torch", "cpu"} <= set(op.kernels.backends), (name, op.kernels.backends)
        assert hasattr(torch.ops.kernelflow, name.split("::")[1])


def test_dense_ops_register_every_backend():
    sparse = {"kernelflow::sparse_column_stats", "kernelflow::sparse_column_apply_out",
              "kernelflow::sparse_column_quantiles", "kernelflow::weighted_column_stats"}
    for name, op in _kernel_ops().items():
        want = ("cpu", "torch") if name in sparse else ("cuda", "triton", "cpu", "torch")
        assert set(op.kernels.backends) == set(want), (name, op.kernels.backends)


def test_no_op_body_branches_on_the_backend():
    # the registry is the one place that maps a backend name to code
    pattern = re.compile(r"\bbackend\s*(==|!=|in\s*\()|\bbe\s*==")
    for path in OPS_DIR.glob("*.py"):
        if path.name == "_registry.py":
            continue
        hits = [ln for ln in path.read_text().splitlines() if pattern.search(ln)]
        assert not hits, (path.name, hits)


def test_unregistered_backend_is_a_clear_error():
    import scipy.sparse as sp

    x = ops.sparse.as_compressed(sp.csr_matrix(np.eye(3)))
    with pytest.raises(BackendUnavailableError, match="backend 'triton' is unavailable: this op runs on cpu, torch"):
        ops.sparse_column_stats(x, backend="triton")
    with pytest.raises(BackendUnavailableError, match="sparse_column_stats has no 'cuda' kernel"):
        torch.ops.kernelflow.sparse_column_stats(x.indptr, x.indices, x.data, None, 3, 3, True, "cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        ops.column_stats(torch.zeros(2, 2), backend="gpu")


def test_block_backend_the_op_lacks_falls_back_among_its_kernels():
    import scipy.sparse as sp

    X = sp.random(50, 4, density=0.3, format="csr", random_state=0)
    want = ops.sparse_column_stats(X, backend="torch")
    if "triton" in kernelflow.available_backends("cpu"):
        with kernelflow.backend("triton"):
            got = ops.sparse_column_stats(X)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    with kernelflow.backend("torch"):
        assert ops.stats._column_stats_op.resolve(None, torch.device("cpu")) == "torch"
    assert ops.sparse._stats_op.resolve(None, torch.device("cpu")) == "cpu"
    assert ops.sparse._stats_op.resolve(None, torch.device("cuda")) == "torch"  # no CUDA kernel: the torch one


def test_registering_twice_or_an_unknown_backend_raises():
    t = KernelTable("kernelflow_test::table")
    t.kernel("torch")(lambda k: 1)
    with pytest.raises(ValueError, match="already registered"):
        t.kernel("torch")(lambda k: 2)
    with pytest.raises(ValueError, match="backend must be one of"):
        t.kernel("gpu")
    assert t("torch") == 1
    with pytest.raises(BackendUnavailableError, match="has no 'cpu' kernel"):
        t("cpu")


def test_signature_must_end_with_backend():
    with pytest.raises(TypeError, match="last parameter must be `backend: str`"):
        @kernel_op("kernelflow_test::bad_signature")
        def _bad(x: torch.Tensor) -> torch.Tensor:
            """no backend"""


@kernel_op("kernelflow_test::scaled_sum")
def _scaled_sum(x: torch.Tensor, s: float, backend: str) -> torch.Tensor:
    """x [rows, cols] float32 -> [cols] float64 column sums times s."""


_scaled_sum.kernel("torch")(lambda k, x, s: x.double().sum(0) * s)


@_scaled_sum.register_fake
def _(x, s, backend):
    return x.new_empty((x.shape[1],), dtype=torch.float64)


@_scaled_sum.kernel("cpu")
def _(k, x, s):
    # a real compiled kernel: column_stats' mean * count is the column sum over finite values
    st = torch.empty((6, x.shape[1]), dtype=torch.float64)
    k.C.column_stats_cpu(mat(x), st.data_ptr())
    return st[2] * st[0] * s


def test_a_declared_op_runs_opchecks_and_compiles():
    x = torch.randn(40, 3)
    ref = x.double().sum(0) * 2.0
    for be in ("torch", "cpu"):
        torch.testing.assert_close(_scaled_sum(x, 2.0, be), ref, rtol=1e-12, atol=1e-12)
        torch.library.opcheck(_scaled_sum, (x, 2.0, be))
    assert _scaled_sum.kernels.backends == ("cpu", "torch")

    def f(t):
        return _scaled_sum(t, 2.0, _scaled_sum.resolve(None, t.device)) + 1

    g = torch.compile(f, fullgraph=True, backend="eager")
    torch.testing.assert_close(g(x), ref + 1, rtol=1e-12, atol=1e-12)


def test_k_call_runs_compiled_kernels_only():
    from kernelflow.ops._registry import Launch

    k = Launch("torch", torch.device("cpu"), None)
    with pytest.raises(ValueError, match="compiled kernels"):
        k.call("column_stats")
    with pytest.raises(ValueError, match="no Triton module"):
        k.triton  # noqa: B018


# ------------------------------------------------------------------------------ dtype names

@pytest.mark.parametrize("d", ["float32", torch.float32, np.float32, np.dtype("float32"), "torch.float32"])
def test_as_dtype_accepts_every_spelling(d):
    assert as_dtype(d) is torch.float32


def test_as_dtype_refuses_with_the_argument_name():
    with pytest.raises(ValueError, match=r"out_dtype must be one of float32, float16, bfloat16; got 'float64'"):
        as_dtype("float64", LOW_FLOATS, "out_dtype")
    for bad in ("int8", "f32", None, 3, object()):
        with pytest.raises(ValueError, match="dtype must be one of"):
            as_dtype(bad, FLOATS)


def test_one_map_everywhere():
    assert set(CODES) == set(NAMES.values())
    from kernelflow import _array

    assert _array.DTYPE_CODES is CODES
    assert _array.out_dtype("bfloat16", "x") is torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be one of float32, float64, float16, bfloat16"):
        ops.numeric_transform(torch.zeros(1, 1), ops.transform_params(1), "int64")
    with pytest.raises(ValueError, match="out_dtype must be one of float32, float16, bfloat16"):
        ops.weight_only_gemm(torch.zeros(1, 2), torch.zeros(3, 2, dtype=torch.int8), torch.ones(3), out_dtype="float64")
    from kernelflow.nn import Int8Linear

    assert Int8Linear(2, 3, out_dtype=np.float16).out_dtype is torch.float16
    with pytest.raises(ValueError, match="out_dtype must be one of"):
        Int8Linear(2, 3, out_dtype="int8")


# ------------------------------------------------------------------------------ layouts split

def test_layouts_live_in_their_module_and_onehot_reexports_them():
    from kernelflow.ops import layouts, onehot

    for name in ("OneHotLayout", "OrdinalLayout", "ZEROS", "ERROR", "ERR_MISSING", "ERR_UNKNOWN"):
        assert getattr(onehot, name) is getattr(layouts, name)
    assert ops.OneHotLayout is layouts.OneHotLayout
    lay = layouts.OneHotLayout.from_categories([np.array(["a", "b"])], handle_unknown="ignore")
    a = lay.tensors("cpu")
    assert a is lay.tensors("cpu")  # built once per device
    assert [t.dtype for t in a] == [torch.int64, torch.int32, torch.int32]
    ol = layouts.OrdinalLayout.from_categories([np.array([1, 2, 3])])
    f, t = ol.tensors("cpu")
    assert f.shape == (3, 1) and t.dtype == torch.float64 and ol.tensors("cpu")[0] is f


# ------------------------------------------------------------------------------ backends x cases

def _x(rows=37, cols=5, seed=0, **kw):
    return hostile_matrix(rows, cols, torch.float32, seed, scale=2.0, **kw)


def _int8(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(-127, 128, (9, 33), generator=g, dtype=torch.int8),
            torch.randint(-127, 128, (7, 33), generator=g, dtype=torch.int8))


_P = ops.transform_params(5, fill=0.5, lo=-1.0, hi=3.0, shift=0.25, inv_scale=2.0, offset=-1.0)
_LAYOUT = ops.OneHotLayout.from_categories([np.arange(4), np.arange(3)], [np.array([5, 1, 3, 2]), np.array([4, 4, 1])],
                                           handle_unknown="ignore", min_frequency=2)
_CODES = torch.tensor([[0, 1], [1, 2], [3, -1], [7, 0], [-5, 2], [2, 1]], dtype=torch.int32)

# one hostile call per op family: (run(device, backend) -> tensor, tolerance against the torch kernel)
CASES = {
    "column_stats": (lambda d, b: ops.column_stats(_x().to(d), backend=b), STATS_RTOL[torch.float32]),
    "numeric_transform": (lambda d, b: ops.numeric_transform(_x().to(d), _P, backend=b), OUT_RTOL[torch.float32]),
    "column_quantiles": (lambda d, b: ops.column_quantiles(_x(cols=3).to(d), [0.0, 0.3, 1.0], backend=b), 0.0),
    "quantize_rows": (lambda d, b: torch.cat([t.double().reshape(-1) for t in ops.quantize_rows(
        _x(nan=0.0, inf=0.0).to(d), backend=b)]), 0.0),
    "layer_norm": (lambda d, b: ops.layer_norm(_x(6, 16, nan=0.0, inf=0.0).to(d), 16, backend=b), 2e-5),
    "rms_norm": (lambda d, b: ops.rms_norm(_x(6, 16, nan=0.0, inf=0.0).to(d), 16, backend=b), 2e-5),
    "distill_loss": (lambda d, b: ops.distill_loss(_x(4, 6, 1, nan=0.0, inf=0.0).to(d), _x(4, 6, 2, nan=0.0, inf=0.0).to(d),
                                                   torch.tensor([0, 5, 2, -100], device=d), reduction="none",
                                                   backend=b), 2e-5),
    "int8_gemm": (lambda d, b: ops.int8_gemm(*(t.to(d) for t in _int8()), torch.full((9,), 0.5, device=d),
                                             torch.full((7,), 0.25, device=d), backend=b), 2e-6),
    "one_hot": (lambda d, b: ops.one_hot(_CODES.to(d), _LAYOUT, backend=b), 0.0),
}


@backend_cases(CASES)
def test_every_backend_agrees_with_the_torch_kernel(device_backend, case):
    device, backend = device_backend
    run, rtol = case
    assert_close(run(device, backend), run("cpu", "torch"), rtol)
