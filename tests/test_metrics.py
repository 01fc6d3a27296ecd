"""kernelflow.train.metrics against scikit-learn.metrics on random data, ties and edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from kernelflow.train import metrics as M

RNG = np.random.default_rng(0)


def _labels(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, n)


@pytest.mark.parametrize("n,k", [(1, 2), (7, 2), (500, 2), (500, 5), (64, 11)])
@pytest.mark.parametrize("seed", [0, 1])
def test_classification_label_metrics(n, k, seed):
    yt, yp = _labels(n, k, seed), _labels(n, k, seed + 100)
    t, p = torch.from_numpy(yt), torch.from_numpy(yp)
    assert M.accuracy(t, p) == pytest.approx(skm.accuracy_score(yt, yp), abs=1e-12)
    averages = ["macro", "micro", "weighted"] + (["binary"] if k == 2 else [])
    for avg in averages:
        for ours, theirs in ((M.precision, skm.precision_score), (M.recall, skm.recall_score), (M.f1, skm.f1_score)):
            expect = theirs(yt, yp, average=avg, zero_division=0.0)
            assert ours(t, p, average=avg) == pytest.approx(expect, abs=1e-12), (ours.__name__, avg)
    per_class = M.f1(t, p, average=None)
    np.testing.assert_allclose(per_class, skm.f1_score(yt, yp, average=None, zero_division=0.0), atol=1e-12)


def test_label_metrics_accept_numpy_and_non_contiguous_labels():
    yt = np.array([3, 7, 7, 3, 9, 9, 9])
    yp = np.array([3, 7, 9, 9, 9, 3, 9])
    assert M.f1(yt, yp, average="macro") == pytest.approx(skm.f1_score(yt, yp, average="macro"), abs=1e-12)
    # labels only in y_pred count as classes (sklearn's union of labels)
    yp2 = np.array([3, 7, 5, 9, 9, 3, 9])
    assert M.precision(yt, yp2, average="macro") == pytest.approx(
        skm.precision_score(yt, yp2, average="macro", zero_division=0.0), abs=1e-12)


def test_binary_single_class_and_zero_division():
    yt = np.zeros(6, dtype=np.int64)
    yp = np.zeros(6, dtype=np.int64)
    for ours, theirs in ((M.precision, skm.precision_score), (M.recall, skm.recall_score), (M.f1, skm.f1_score)):
        assert ours(yt, yp) == theirs(yt, yp, zero_division=0.0) == 0.0
        assert ours(yt, yp, zero_division=1.0) == theirs(yt, yp, zero_division=1.0) == 1.0
    ones = np.ones(6, dtype=np.int64)
    assert M.f1(ones, ones) == skm.f1_score(ones, ones) == 1.0


def test_binary_average_rejects_multiclass_and_bad_pos_label():
    with pytest.raises(ValueError, match="binary"):
        M.f1([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="pos_label"):
        M.f1([0, 2, 2], [0, 2, 0])
    with pytest.raises(ValueError, match="average"):
        M.f1([0, 1], [0, 1], average="samples")


@pytest.mark.parametrize("n", [2, 9, 400])
@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_binary(n, ties):
    rng = np.random.default_rng(n)
    yt = rng.integers(0, 2, n)
    yt[0], yt[-1] = 0, 1  # both classes present
    s = rng.normal(size=n)
    if ties:
        s = np.round(s * 2) / 2  # few distinct values: many ties
    expect = skm.roc_auc_score(yt, s)
    assert M.roc_auc(torch.from_numpy(yt), torch.from_numpy(s)) == pytest.approx(expect, abs=1e-12)
    # float32 scores and a (n, 2) score matrix (column 1 = positive class)
    s32 = torch.from_numpy(s).float()
    assert M.roc_auc(torch.from_numpy(yt), torch.stack([-s32, s32], 1)) == pytest.approx(
        skm.roc_auc_score(yt, s32.numpy()), abs=1e-9)


def test_roc_auc_all_tied_is_half():
    assert M.roc_auc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == skm.roc_auc_score([0, 1, 0, 1], [0.3] * 4) == 0.5


@pytest.mark.parametrize("k", [3, 6])
@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_multiclass_ovr_macro(k, ties):
    rng = np.random.default_rng(k)
    n = 300
    yt = rng.integers(0, k, n)
    yt[:k] = np.arange(k)
    logits = rng.normal(size=(n, k))
    if ties:
        logits = np.round(logits)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expect = skm.roc_auc_score(yt, p, multi_class="ovr", average="macro")
    assert M.roc_auc(torch.from_numpy(yt), torch.from_numpy(p)) == pytest.approx(expect, abs=1e-12)


def test_roc_auc_errors_like_sklearn():
    # A single class: current scikit-learn warns and returns NaN (it raised before 1.6); so do we.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expect = skm.roc_auc_score([1, 1, 1], [0.1, 0.2, 0.3])
        except ValueError:  # older scikit-learn
            expect = float("nan")
    assert np.isnan(expect)
    with pytest.warns(M.UndefinedMetricWarning, match="Only one class"):
        assert np.isnan(M.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="columns"):
        M.roc_auc([0, 1, 1, 0], torch.rand(4, 3))  # class 2 never occurs
    with pytest.raises(ValueError, match="NaN"):
        M.roc_auc([0, 1], [0.5, float("nan")])
    with pytest.raises(ValueError, match="1-D"):
        M.roc_auc([0, 1, 2], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("shape", [(1,), (2,), (50,), (500,), (40, 3)])
def test_regression_metrics(shape):
    rng = np.random.default_rng(len(shape) * 10 + shape[0])
    yt, yp = rng.normal(size=shape), rng.normal(size=shape)
    t, p = torch.from_numpy(yt), torch.from_numpy(yp)
    assert M.mse(t, p) == pytest.approx(skm.mean_squared_error(yt, yp), rel=1e-12)
    assert M.mae(t, p) == pytest.approx(skm.mean_absolute_error(yt, yp), rel=1e-12)
    if shape[0] < 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert np.isnan(skm.r2_score(yt, yp))
        with pytest.warns(RuntimeWarning, match="two samples"):
            assert np.isnan(M.r2(t, p))
    else:
        assert M.r2(t, p) == pytest.approx(skm.r2_score(yt, yp), rel=1e-10)


def test_regression_float32_and_column_output():
    yt = torch.randn(100)
    yp = (yt + 0.1 * torch.randn(100)).unsqueeze(1)  # (n, 1) model output against (n,) targets
    # float32 inputs accumulate in float64: agreement to float32 rounding of the inputs only.
    assert M.mse(yt, yp) == pytest.approx(skm.mean_squared_error(yt.numpy(), yp.numpy()[:, 0]), rel=1e-6)
    assert M.r2(yt, yp) == pytest.approx(skm.r2_score(yt.numpy(), yp.numpy()[:, 0]), rel=1e-6)
    with pytest.raises(ValueError, match="shapes"):
        M.mse(torch.zeros(4), torch.zeros(4, 2))


def test_r2_constant_target_like_sklearn():
    c = np.full(5, 2.0)
    assert M.r2(c, c) == skm.r2_score(c, c) == 1.0
    assert M.r2(c, c + np.arange(5)) == skm.r2_score(c, c + np.arange(5)) == 0.0


@pytest.mark.parametrize("fn", [M.accuracy, M.precision, M.recall, M.f1, M.roc_auc, M.mse, M.mae, M.r2])
def test_empty_and_mismatched_input(fn):
    with pytest.raises(ValueError, match="empty"):
        fn(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="lengths"):
        fn(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))


def test_non_array_input_is_type_error():
    with pytest.raises(TypeError, match="y_pred"):
        M.accuracy([0, 1], object())


def test_tensor_forms_stay_on_device_as_tensors():
    t = M.roc_auc_tensor(torch.tensor([0, 1, 1]), torch.tensor([0.1, 0.9, 0.4]))
    assert isinstance(t, torch.Tensor) and t.dim() == 0 and t.dtype == torch.float64
