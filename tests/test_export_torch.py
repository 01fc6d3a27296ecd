"""torch.export / AOTInductor: a saved program holding kernelflow ops loads and runs in a fresh
process. ``import kernelflow`` makes ``torch.ops.kernelflow`` define the ops on first lookup (what
torch.export.load does); AOTInductor packages load through ``kernelflow.load_aoti``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import kernelflow
from kernelflow.nn import LayerNorm, RMSNorm

PY = Path(kernelflow.__file__).resolve().parents[1]  # the directory holding the kernelflow package


def _fresh(code: str, timeout: int = 300) -> str:
    """Run code in a new interpreter that has never defined the kernelflow ops."""
    env = {"PYTHONPATH": str(PY), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


class _Pipe(torch.nn.Module):
    def __init__(self, pre, width):
        super().__init__()
        self.pre = pre.to_module()
        self.lin = torch.nn.Linear(pre.n_features_out_, width)
        self.ln = LayerNorm(width)
        self.rms = RMSNorm(width)

    def forward(self, num, cat):
        return self.rms(self.ln(self.lin(self.pre(num, cat))))


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    df = pytest.importorskip("palmerpenguins").load_penguins().drop(columns=["species"])
    pre = kernelflow.Preprocessor(add_indicator=True, nonlinear="yeo-johnson").fit(df)
    torch.manual_seed(0)
    m = _Pipe(pre, 8).eval()
    inp = pre.inputs(df)
    N = torch.export.Dim("N", min=2)
    ep = torch.export.export(m, (inp.num, inp.cat), dynamic_shapes=({0: N}, {0: N}))
    d = tmp_path_factory.mktemp("ep")
    torch.export.save(ep, d / "ep.pt2")
    with torch.no_grad():
        ref = m(inp.num, inp.cat)
    torch.save({"num": inp.num, "cat": inp.cat, "ref": ref}, d / "data.pt")
    return d, ep


def test_exported_program_contains_kernelflow_ops(program):
    _, ep = program
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert {"kernelflow.numeric_transform.default", "kernelflow.layer_norm_fwd.default",
            "kernelflow.rms_norm_fwd.default"} <= targets


def test_exported_program_loads_in_a_fresh_process(program):
    d, _ = program
    out = _fresh(f"""
        import sys, torch
        import kernelflow
        assert "kernelflow.ops" not in sys.modules  # import kernelflow stays light
        d = torch.load({str(d / 'data.pt')!r})
        m = torch.export.load({str(d / 'ep.pt2')!r}).module()
        out = m(d["num"], d["cat"])
        print((out - d["ref"]).abs().max().item())
    """)
    assert float(out.strip().splitlines()[-1]) <= 1e-6


def test_without_kernelflow_the_program_does_not_load(program):
    d, _ = program
    with pytest.raises(AssertionError, match="kernelflow"):
        _fresh(f"import torch; torch.export.load({str(d / 'ep.pt2')!r})")


# AOTInductor compiles C++: about a minute on two cores
def test_aoti_package_loads_in_a_fresh_process(program):
    d, ep = program
    pkg = torch._inductor.aoti_compile_and_package(ep, package_path=str(d / "m_aoti.pt2"))
    out = _fresh(f"""
        import torch
        import kernelflow
        d = torch.load({str(d / 'data.pt')!r})
        m = kernelflow.load_aoti({pkg!r})
        print((m(d["num"], d["cat"]) - d["ref"]).abs().max().item())
    """)
    assert float(out.strip().splitlines()[-1]) <= 1e-5
