"""quantize(): shared layers, skip rules, argument errors, SNR against the float model."""

from __future__ import annotations

import torch

from _case import case, close, raises


@case("quant/shared_linear_replaced_everywhere")
def _():
    import kernelflow
    from kernelflow.nn import Int8Linear

    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 8)
    m = torch.nn.Sequential(lin, torch.nn.ReLU(), lin, torch.nn.ReLU(), torch.nn.Linear(8, 2))
    q, rep = kernelflow.quantize(m)
    assert isinstance(q[0], Int8Linear) and q[0] is q[2] and isinstance(q[4], Int8Linear), q
    assert [l.name for l in rep.layers] == ["0", "4"], rep
    x = torch.randn(16, 8)
    with torch.no_grad():
        close(q(x), m(x), rtol=5e-2, atol=5e-2)


@case("quant/shared_linear_with_calibration")
def _():
    import kernelflow

    torch.manual_seed(1)
    lin = torch.nn.Linear(8, 8)
    m = torch.nn.Sequential(lin, torch.nn.Tanh(), lin)
    q, rep = kernelflow.quantize(m, calibration=[torch.randn(32, 8) for _ in range(2)], static=True)
    assert q[0] is q[2] and rep.layers[0].data == "calibration" and rep.layers[0].rows == 128, rep
    assert rep.min_snr_db > 25, rep


@case("quant/shared_linear_skipped_by_any_name")
def _():
    import kernelflow

    lin = torch.nn.Linear(4, 4)
    m = torch.nn.Sequential(lin, torch.nn.ReLU(), lin)
    q, rep = kernelflow.quantize(m, skip=["2"])
    assert isinstance(q[0], torch.nn.Linear) and isinstance(q[2], torch.nn.Linear) and rep.skipped == ["0", "2"], rep


@case("quant/nested_and_bare_linear")
def _():
    import kernelflow
    from kernelflow.nn import Int8Linear

    inner = torch.nn.Sequential(torch.nn.Linear(4, 4))
    m = torch.nn.Sequential(inner, torch.nn.ModuleDict({"a": inner[0]}))
    q, _ = kernelflow.quantize(m)
    assert q[0][0] is q[1]["a"] and isinstance(q[1]["a"], Int8Linear)
    q, rep = kernelflow.quantize(torch.nn.Linear(3, 2))
    assert isinstance(q, Int8Linear) and rep.layers[0].name == "<model>"


@case("quant/argument_errors")
def _():
    import kernelflow

    m = torch.nn.Sequential(torch.nn.Linear(4, 4))
    raises(ValueError, "mode must be one of", kernelflow.quantize, m, mode="int4")
    raises(ValueError, "method must be", kernelflow.quantize, m, method="mean")
    raises(ValueError, "static activation scales need calibration", kernelflow.quantize, m, static=True)
    raises(ValueError, "mode='w8a8' only", kernelflow.quantize, m, mode="weight_only", static=True,
           calibration=[torch.randn(2, 4)])
    raises(TypeError, "model must be an nn.Module", kernelflow.quantize, [m])


@case("quant/original_model_untouched")
def _():
    import kernelflow

    m = torch.nn.Sequential(torch.nn.Linear(4, 4))
    w = m[0].weight.detach().clone()
    q, _ = kernelflow.quantize(m)
    assert isinstance(m[0], torch.nn.Linear) and torch.equal(m[0].weight, w) and q is not m


@case("quant/weight_only_and_w8a8_accuracy")
def _():
    import kernelflow

    torch.manual_seed(2)
    m = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 8))
    for mode in ("w8a8", "weight_only"):
        q, rep = kernelflow.quantize(m, mode=mode)
        assert rep.min_snr_db > 30, (mode, str(rep))
