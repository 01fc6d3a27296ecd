"""train.fit and Distiller.fit on what a pipeline produces: (num, cat) blocks for an end-to-end
module, a DataFrame with a fitted Preprocessor, and string / categorical labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pd = pytest.importorskip("pandas")
palmerpenguins = pytest.importorskip("palmerpenguins")

import kernelflow  # noqa: E402
from kernelflow.distill import Distiller  # noqa: E402
from kernelflow.train import fit  # noqa: E402
from kernelflow.workflow.models import TabularModel, mlp  # noqa: E402


@pytest.fixture(scope="module")
def penguins():
    df = palmerpenguins.load_penguins()
    y = df.pop("species")  # strings: Adelie, Chinstrap, Gentoo
    pre = kernelflow.Preprocessor(impute="median", add_indicator=True).fit(df)
    return df, y, pre


def _net(pre, seed=0, out=3):
    torch.manual_seed(seed)
    return mlp(pre.n_features_out_, [16], out, 0.0, "layernorm")


def _same(a: nn.Module, b: nn.Module, atol: float = 0.0):
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2 and torch.allclose(v, v2, rtol=0, atol=atol), (k, (v - v2).abs().max())


def test_dataframe_with_preprocessor_equals_the_matrix(penguins):
    df, y, pre = penguins
    a, b = _net(pre), _net(pre)
    ha = fit(a, (df, y), (df, y), preprocessor=pre, epochs=3, batch_size=32, progress=False)
    X = torch.as_tensor(pre.transform(df))
    codes = torch.as_tensor(pd.Categorical(y, categories=sorted(y.unique())).codes.astype(np.int64))
    hb = fit(b, (X, codes), (X, codes), epochs=3, batch_size=32, progress=False)
    _same(a, b)
    assert ha.classes == ["Adelie", "Chinstrap", "Gentoo"] and hb.classes is None
    assert ha.val_metric == hb.val_metric and ha.val_metric[-1] > 0.6


def test_blocks_for_an_end_to_end_module_equal_the_matrix(penguins):
    df, y, pre = penguins
    e2e = TabularModel(pre.to_module(), _net(pre))
    ref = _net(pre)
    num, cat, pas = pre.inputs(df)
    assert pas is None
    h = fit(e2e, ((num, cat), y.to_numpy()), ((num, cat, None), list(y)), epochs=2, batch_size=32, progress=False)
    h2 = fit(ref, (df, y), preprocessor=pre, epochs=2, batch_size=32, progress=False)
    # the Preprocess module and the fused table kernel agree to one float32 ulp, not bit for bit
    _same(e2e.net, ref, atol=1e-4)
    assert h.classes == h2.classes == ["Adelie", "Chinstrap", "Gentoo"]


def test_label_kinds_and_errors(penguins):
    df, y, pre = penguins
    X = torch.as_tensor(pre.transform(df))
    # pandas categorical labels and an explicit class order
    h = fit(_net(pre), (X, y.astype("category")), epochs=1, progress=False, classes=["Gentoo", "Adelie", "Chinstrap"])
    assert h.classes == ["Gentoo", "Adelie", "Chinstrap"]
    # integer labels with classes: encoded through them
    yi = np.where(y == "Adelie", 10, 20)
    h = fit(_net(pre, out=2), (X, yi), epochs=1, progress=False, classes=[10, 20])
    assert h.classes == [10, 20]
    with pytest.raises(ValueError, match="'Emperor' is not one of the classes"):
        fit(_net(pre), (X, y), (X[:2], ["Adelie", "Emperor"]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="missing"):
        fit(_net(pre), (X[:3], ["Adelie", None, "Gentoo"]), epochs=1, progress=False)
    with pytest.raises(TypeError, match="preprocessor"):
        fit(_net(pre), (df, y), epochs=1, progress=False)
    with pytest.raises(ValueError, match="different numbers of rows"):
        num, cat, _ = pre.inputs(df)
        fit(TabularModel(pre.to_module(), _net(pre)), ((num, cat[:-1]), y), epochs=1, progress=False)
    with pytest.raises(ValueError, match="callable loss"):
        fit(_net(pre), (X, (torch.zeros(len(X), dtype=torch.long), torch.zeros(len(X), 3))), epochs=1, progress=False)
    with pytest.raises(ValueError, match="val X rows have shape"):
        fit(_net(pre), (X, y), (X[:, :-1], y), epochs=1, progress=False)


def test_regression_targets_from_a_series(penguins):
    df, _, pre0 = penguins
    d = df.dropna(subset=["body_mass_g"])
    target = d.pop("body_mass_g") / 1000.0
    pre = kernelflow.Preprocessor().fit(d)
    net = mlp(pre.n_features_out_, [16], 1, 0.0, "none")
    h = fit(net, (d, target), (d, target), preprocessor=pre, epochs=30, batch_size=32, metric="r2", progress=False,
            optimizer=lambda p: torch.optim.AdamW(p, lr=1e-2))
    assert h.task == "regression" and h.classes is None
    assert h.best_metric > 0.5  # body mass from flipper length, species, sex


def test_distiller_fit_on_tables_and_blocks(penguins):
    df, y, pre = penguins
    teacher = _net(pre, 1)
    fit(teacher, (df, y), preprocessor=pre, epochs=20, batch_size=32, progress=False,
        optimizer=lambda p: torch.optim.AdamW(p, lr=1e-2))
    student = mlp(pre.n_features_out_, [4], 3, 0.0, "none")
    d = Distiller(teacher, student, optimizer=torch.optim.AdamW(student.parameters(), lr=1e-2))
    h = d.fit((df, y), (df, y), preprocessor=pre, epochs=15, batch_size=32, progress=False)
    assert h.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert h.val_metric[-1] > 0.8 and h.val_loss[-1] < h.val_loss[0]
    assert all(not p.requires_grad for p in teacher.parameters())
    # end-to-end teacher and student on (num, cat) blocks, with a matched feature pair
    num, cat, _ = pre.inputs(df)
    t2 = TabularModel(pre.to_module(), teacher)
    s2 = TabularModel(pre.to_module(), mlp(pre.n_features_out_, [8], 3, 0.0, "none"))
    d2 = Distiller(t2, s2, feature_pairs={"net.0": "net.0"})
    w0 = d2.projections["net__0"].weight.detach().clone()
    h2 = d2.fit(((num, cat), y), ((num, cat), y), epochs=3, batch_size=32, progress=False)
    assert h2.epochs_run == 3 and len(h2.val_loss) == 3
    assert not torch.equal(w0, d2.projections["net__0"].weight)  # the projection trained with the student
    with pytest.raises(TypeError, match="loss"):
        d2.fit(((num, cat), y), epochs=1, progress=False, loss="mse")
