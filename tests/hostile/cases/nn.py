"""nn modules: fused norms in float64 and empty models, patch(), Int8Linear edge values."""

from __future__ import annotations

import numpy as np
import torch

from _case import case, close, raises



def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
                               torch.nn.RMSNorm(8), torch.nn.Linear(8, 2))


for dt in (torch.float32, torch.float64):
    @case(f"nn/patch_keeps_outputs_and_grads[{str(dt)[6:]}]")
    def _(dt=dt):
        import copy

        import kernelflow

        m = _model().to(dt)
        ref = copy.deepcopy(m)
        replaced = kernelflow.patch(m)
        assert len(replaced) == 2, replaced
        x = torch.randn(5, 6, dtype=dt)
        y, yr = m(x), ref(x)
        close(y, yr, rtol=1e-5 if dt == torch.float32 else 1e-12, atol=1e-6 if dt == torch.float32 else 1e-12)
        y.sum().backward()
        yr.sum().backward()
        for (n, p), (_, q) in zip(m.named_parameters(), ref.named_parameters()):
            close(p.grad, q.grad, rtol=1e-4 if dt == torch.float32 else 1e-10, atol=1e-5 if dt == torch.float32 else 1e-12,
                  what=f"grad {n}")


@case("nn/layernorm_modules_empty_hidden_and_batch")
def _():
    from kernelflow.nn import LayerNorm, RMSNorm

    for M in (LayerNorm, RMSNorm):
        m = M(0)
        assert m(torch.randn(3, 0)).shape == (3, 0)
        m = M(4)
        assert m(torch.randn(0, 4)).shape == (0, 4)
        assert m(torch.randn(2, 0, 4)).shape == (2, 0, 4)


@case("nn/layernorm_module_bf16_fp16_vs_torch")
def _():
    from kernelflow.nn import LayerNorm

    for dt in (torch.bfloat16, torch.float16):
        x = (torch.randn(4, 64) * 100 + 1000).to(dt)
        m = LayerNorm(64).to(dt)
        ref = torch.nn.functional.layer_norm(x.double(), (64,), m.weight.double(), m.bias.double())
        close(m(x).float(), ref, rtol=2e-2, atol=2e-2, what=str(dt))


@case("nn/int8_relu_keeps_inf_and_nan")
def _():
    from kernelflow.nn import Int8Linear

    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    q = Int8Linear.from_float(lin, activation="relu")
    x = torch.tensor([[np.inf, 1.0, 1.0, 1.0], [np.nan, 1.0, 1.0, 1.0]])
    with torch.no_grad():
        ref = torch.relu(lin(x))
        got = q(x)
    # the NaN row stays NaN; the inf row cannot be quantized (its scale is inf): NaN marks it, or
    # the float model's exact answer; never silent zeros where the reference is NaN
    assert torch.isnan(got[1]).all(), got
    assert torch.isnan(got[0]).all() or torch.equal(got[0], ref[0]), (got, ref)


@case("nn/int8_weight_only_keeps_nan")
def _():
    from kernelflow.nn import Int8Linear

    lin = torch.nn.Linear(4, 3)
    q = Int8Linear.from_float(lin, mode="weight_only")
    got = q(torch.tensor([[np.nan, 1.0, 1.0, 1.0]]))
    assert torch.isnan(got).all(), got


@case("nn/int8_backward")
def _():
    from kernelflow.nn import Int8Linear

    lin = torch.nn.Linear(4, 3)
    q = Int8Linear.from_float(lin)
    x = torch.randn(5, 4, requires_grad=True)
    q(x).sum().backward()
    close(x.grad, lin.weight.detach().sum(0).expand(5, 4), rtol=5e-2, atol=5e-2)


@case("nn/preprocess_module_passthrough_missing_is_clean_error")
def _():
    import pandas as pd

    import kernelflow

    df = pd.DataFrame({"a": [1.0, 2.0], "p": [3.0, 4.0], "c": ["x", "y"]})
    pre = kernelflow.Preprocessor(passthrough=["p"]).fit(df)
    num, cat, pas = pre.inputs(df)
    close(pre.to_module()(num, cat, pas), pre.transform(df))
    raises(ValueError, "passthrough columns: pass them as `passthrough`", pre.to_module(), num, cat)


@case("nn/preprocess_module_state_dict_round_trip")
def _():
    from palmerpenguins import load_penguins

    import kernelflow

    df = load_penguins()
    pre = kernelflow.Preprocessor(impute="median", scale="robust", add_indicator=True).fit(df)
    m = pre.to_module()
    m2 = pre.to_module()
    m2.load_state_dict({k: v.clone() for k, v in m.state_dict().items()})
    close(m2(*pre.inputs(df)), pre.transform(df), rtol=1e-6, atol=1e-6)
