"""kernelflow.train.fit: convergence, reproducibility, early stopping, amp, arguments, DDP."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import kernelflow
from kernelflow.train import History, fit
from kernelflow.train import metrics as M


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models: intra-op threads only contend on a shared 2-core machine.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _mlp(d_in: int, d_out: int, seed: int = 0, hidden: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


def _binary(n: int = 1200, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    w = torch.randn(d, generator=g)
    return X, (X @ w > 0).long()


def _blobs(n: int = 900, d: int = 6, k: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = 4 * torch.randn(k, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    return centers[y] + torch.randn(n, d, generator=g), y


def _regression(n: int = 1200, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    w = torch.randn(d, generator=g)
    return X, X @ w + 0.1 * torch.randn(n, generator=g)


def _split(X, y, n_train):
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# convergence


@pytest.mark.parametrize("out_dim", [2, 1], ids=["two-logits", "one-logit"])
def test_binary_classification_converges(out_dim):
    tr, va = _split(*_binary(), 1000)
    model = _mlp(8, out_dim)
    h = fit(model, tr, va, epochs=25, batch_size=64, metric="roc_auc", progress=False)
    assert h.task == "classification" and h.metric == "roc_auc" and h.mode == "max"
    assert h.val_metric[-1] > 0.97
    assert h.train_loss[-1] < h.train_loss[0]
    with torch.no_grad():
        out = model(va[0])
    labels = out.argmax(1) if out_dim == 2 else (out[:, 0] > 0).long()
    assert M.accuracy(va[1], labels) > 0.9


def test_multiclass_converges_with_f1_and_roc_auc():
    tr, va = _split(*_blobs(), 700)
    model = _mlp(6, 3)
    h = fit(model, tr, va, epochs=15, batch_size=64, metric="f1", progress=False)
    assert h.mode == "max" and h.val_metric[-1] > 0.95  # macro F1 on well separated blobs
    h2 = fit(model, tr, va, epochs=1, batch_size=64, metric="roc_auc", progress=False)
    assert h2.val_metric[0] > 0.98


def test_regression_converges_numpy_float64_input():
    X, y = _regression()
    tr, va = _split(X.double().numpy(), y.double().numpy(), 1000)  # cast to the model's float32
    model = _mlp(8, 1)
    h = fit(model, tr, va, epochs=30, batch_size=64, metric="r2", progress=False)
    assert h.task == "regression" and h.mode == "max"
    assert h.val_metric[-1] > 0.9
    assert next(model.parameters()).dtype == torch.float32
    h = fit(model, tr, va, epochs=1, batch_size=64, metric="mae", progress=False)
    assert h.mode == "min" and h.val_metric[0] < 0.6


def test_amp_bf16_path():
    tr, va = _split(*_binary(), 1000)
    model = _mlp(8, 2)
    h = fit(model, tr, va, epochs=15, batch_size=64, amp="bf16", progress=False)
    assert all(math.isfinite(v) for v in h.train_loss + h.val_loss)
    assert h.val_metric[-1] > 0.9  # bf16 forward passes: still learns
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32


def test_no_shuffle_and_no_validation():
    tr, _ = _split(*_binary(), 1000)
    model = _mlp(8, 2)
    h = fit(model, tr, epochs=3, batch_size=128, shuffle=False, progress=False)
    assert h.val_loss == [] and h.val_metric == [] and h.metric is None
    assert h.best_epoch == 2 and h.epochs_run == 3 and not h.stopped_early


def test_progress_bar_runs():
    tr, va = _split(*_binary(200), 150)
    fit(_mlp(8, 2), tr, va, epochs=2, batch_size=64, progress=True)


# ---------------------------------------------------------------------------------------------
# reproducibility, RNG hygiene, history


def test_same_seed_same_weights_on_cpu():
    tr, va = _split(*_binary(), 1000)

    def run(seed):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))
        h = fit(model, tr, va, epochs=3, batch_size=100, seed=seed, progress=False)
        return _params(model), h

    a, ha = run(0)
    b, hb = run(0)
    c, _ = run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ha.train_loss == hb.train_loss and ha.val_metric == hb.val_metric
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_global_rng_state_untouched():
    tr, _ = _split(*_binary(300), 200)
    model = _mlp(8, 2)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    fit(model, tr, epochs=1, progress=False)
    assert torch.equal(before, torch.get_rng_state())


def test_history_json_roundtrip():
    tr, va = _split(*_binary(300), 200)
    h = fit(_mlp(8, 2), tr, va, epochs=2, progress=False)
    d = json.loads(h.to_json())
    assert d["epochs_run"] == 2 and len(d["train_loss"]) == 2 and d["metric"] == "accuracy"
    assert d["elapsed_seconds"] > 0 and len(d["epoch_seconds"]) == 2
    back = History.from_json(h.to_json())
    assert back.train_loss == h.train_loss and back.best_epoch == h.best_epoch
    h.val_metric[0] = float("nan")  # JSON has no NaN: stored as null
    assert json.loads(h.to_json())["val_metric"][0] is None


# ---------------------------------------------------------------------------------------------
# early stopping and callbacks


def test_early_stopping_stops_and_restores_best_weights():
    tr, va = _split(*_binary(400), 300)
    model = _mlp(8, 2)
    scripted = iter([0.1, 0.5, 0.4, 0.45, 0.3, 0.9, 0.9])  # best at epoch 1, then 3 worse epochs
    snapshots = []

    def metric(y_true, out):
        assert y_true.shape[0] == 100 and out.shape == (100, 2)
        return next(scripted)

    h = fit(model, tr, va, epochs=7, metric=metric, mode="max", patience=3, progress=False,
            callbacks=[lambda hist, m: snapshots.append(_params(m))])
    assert h.epochs_run == 5 and h.stopped_early and h.restored_best
    assert h.best_epoch == 1 and h.best_metric == 0.5 and h.metric == "metric"
    final = _params(model)
    assert all(torch.equal(final[k], snapshots[1][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[-1][k]) for k in final)


def test_early_stopping_min_mode_and_min_delta():
    tr, va = _split(*_regression(400), 300)
    vals = iter([1.0, 0.95, 0.9, 0.5, 0.49, 0.48, 0.47])
    h = fit(_mlp(8, 1), tr, va, epochs=7, metric=lambda y, o: next(vals), mode="min", patience=2,
            min_delta=0.05, progress=False)
    # improvements must beat the best by more than 0.05: 1.0 -> 0.9 (ep 2) -> 0.5 (ep 3), then none
    assert h.best_epoch == 3 and h.epochs_run == 6 and h.stopped_early


def test_callback_can_stop():
    tr, _ = _split(*_binary(300), 200)
    h = fit(_mlp(8, 2), tr, epochs=10, progress=False, callbacks=[lambda hist, m: hist.epochs_run >= 2])
    assert h.epochs_run == 2 and h.stopped_early


def test_grad_clip_bounds_the_step():
    tr, _ = _split(*_binary(300), 200)
    model = _mlp(8, 2)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    fit(model, tr, epochs=1, batch_size=1000, grad_clip=1e-3, progress=False,
        optimizer=lambda params: torch.optim.SGD(params, lr=1.0))
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert 0 < (after - before).norm() <= 1e-3 * (1 + 1e-4)


def test_custom_loss_and_optimizer_instance():
    tr, va = _split(*_regression(400), 300)
    model = _mlp(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    h = fit(model, tr, va, loss=lambda out, y: ((out[:, 0] - y) ** 2).mean(), optimizer=opt, epochs=5,
            batch_size=32, progress=False)
    assert h.metric == "mse" and h.val_metric[-1] < h.val_metric[0]


@pytest.mark.gpu
@pytest.mark.parametrize("amp", [None, "bf16"])
def test_cuda_fit_and_metrics(amp):
    from sklearn.metrics import roc_auc_score

    tr, va = _split(*_binary(), 1000)
    model = _mlp(8, 2)
    h = fit(model, tr, va, epochs=20, batch_size=64, metric="roc_auc", amp=amp, device="cuda", progress=False)
    assert next(model.parameters()).is_cuda and h.val_metric[-1] > 0.97
    with torch.no_grad():
        p = model(va[0].cuda()).softmax(1)[:, 1]
    ours = M.roc_auc_tensor(va[1].cuda(), p)
    assert ours.is_cuda
    assert float(ours) == pytest.approx(roc_auc_score(va[1].numpy(), p.cpu().double().numpy()), abs=1e-9)
    # same seed, same weights on the GPU too (cuBLAS is deterministic for these shapes)
    m2 = _mlp(8, 2)
    fit(m2, tr, va, epochs=20, batch_size=64, metric="roc_auc", amp=amp, device="cuda", progress=False)
    for a, b in zip(model.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# bad arguments


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(epochs=0), ValueError, "epochs"),
        (dict(epochs=2.5), TypeError, "epochs"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(amp="fp8"), ValueError, "amp"),
        (dict(metric="bogus"), ValueError, "metric"),
        (dict(metric="r2"), ValueError, "metric"),  # regression metric on labels
        (dict(metric=lambda y, o: 0.0), ValueError, "mode"),
        (dict(mode="up"), ValueError, "mode"),
        (dict(loss="hinge"), ValueError, "loss"),
        (dict(loss="mse"), ValueError, "loss"),
        (dict(loss=3), TypeError, "loss"),
        (dict(optimizer="adam"), TypeError, "optimizer"),
        (dict(patience=0), ValueError, "patience"),
        (dict(grad_clip=-1.0), ValueError, "grad_clip"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(callbacks=[1]), TypeError, "callbacks"),
        (dict(min_delta=-0.1), ValueError, "min_delta"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    tr, va = _split(*_binary(100), 80)
    with pytest.raises(exc, match=match):
        fit(_mlp(8, 2), tr, va, progress=False, **kwargs)


def test_bad_data():
    X, y = _binary(100)
    with pytest.raises(TypeError, match="model"):
        fit("model", (X, y))
    with pytest.raises(TypeError, match="train"):
        fit(_mlp(8, 2), X)
    with pytest.raises(TypeError, match="train"):
        fit(_mlp(8, 2), ([[1.0]], [1]))
    with pytest.raises(ValueError, match="rows"):
        fit(_mlp(8, 2), (X, y[:50]))
    with pytest.raises(ValueError, match="empty"):
        fit(_mlp(8, 2), (X[:0], y[:0]))
    with pytest.raises(ValueError, match="patience"):
        fit(_mlp(8, 2), (X, y), patience=2)
    with pytest.raises(ValueError, match=">= 0"):
        fit(_mlp(8, 2), (X, y - 1), progress=False)
    with pytest.raises(ValueError, match="val"):
        fit(_mlp(8, 2), (X, y), (X, y.float()), progress=False)
    with pytest.raises(ValueError, match="3 classes"):
        fit(_mlp(8, 1), (X, y * 2), progress=False)  # one logit, labels 0..2


# ---------------------------------------------------------------------------------------------
# DistributedDataParallel: two gloo processes on the CPU

# name: (epochs, patience, model handed over already wrapped in DistributedDataParallel)
_CONFIGS = {"full": (12, 50, False), "early-stop": (40, 1, False), "wrapped": (12, 50, True)}

_WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch, torch.distributed as dist
    from safetensors.torch import save_file
    from kernelflow.train import fit

    rank, port, out, configs = int(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(1001, 8, generator=g)  # 201 validation rows: uneven rank shards
    y = (X @ torch.randn(8, generator=g) > 0).long()
    for name, (epochs, patience, wrap) in configs.items():
        # Different initial weights per rank: DDP must broadcast rank 0's.
        torch.manual_seed(0 if rank == 0 else 99)
        model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
        net = torch.nn.parallel.DistributedDataParallel(model) if wrap else model
        h = fit(net, (X[:800], y[:800]), (X[800:], y[800:]), epochs=epochs, batch_size=32,
                patience=patience, progress=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/{name}{rank}.safetensors")
        with open(f"{out}/{name}{rank}.json", "w") as f:
            f.write(h.to_json())
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, list[str]]:
    """Both configurations trained by one pair of gloo processes (process start-up is the cost)."""
    out = tmp_path_factory.mktemp("ddp")
    script = out / "worker.py"
    script.write_text(_WORKER)
    pkg_root = str(Path(kernelflow.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=pkg_root + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(port), str(out), json.dumps(_CONFIGS)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(2)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=180)[0].decode(errors="replace"))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return out, logs


@pytest.mark.parametrize("name", list(_CONFIGS))
def test_ddp_two_gloo_ranks(ddp_run, name):
    from safetensors.torch import load_file

    out, logs = ddp_run
    epochs, patience, _ = _CONFIGS[name]
    w0, w1 = load_file(str(out / f"{name}0.safetensors")), load_file(str(out / f"{name}1.safetensors"))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    h0 = History.from_json((out / f"{name}0.json").read_text())
    h1 = History.from_json((out / f"{name}1.json").read_text())
    assert h0.world_size == h1.world_size == 2
    assert h0.val_metric == h1.val_metric and h0.val_loss == h1.val_loss and h0.train_loss == h1.train_loss
    assert h0.epochs_run == h1.epochs_run and h0.best_epoch == h1.best_epoch
    assert "fit" not in logs[1] and "fit" in logs[0]  # only rank 0 draws the progress bar

    # Rank r trains on perm[r::2]; step j of both ranks together is exactly the single-process
    # batch j of twice the size from the same permutation, and DDP averages their gradients,
    # so one process with batch_size=64 follows the same trajectory (up to summation order).
    g = torch.Generator().manual_seed(0)
    X = torch.randn(1001, 8, generator=g)  # 201 validation rows: uneven rank shards
    y = (X @ torch.randn(8, generator=g) > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    h = fit(model, (X[:800], y[:800]), (X[800:], y[800:]), epochs=epochs, batch_size=64, patience=patience,
            progress=False)
    assert h.epochs_run == h0.epochs_run and h.best_epoch == h0.best_epoch
    for k, v in model.state_dict().items():
        torch.testing.assert_close(w0[k], v, atol=1e-4, rtol=1e-4)  # fp32 reduction order differs
    np.testing.assert_allclose(h0.train_loss, h.train_loss, rtol=1e-4)
    if patience == 1:
        assert h0.stopped_early and h0.restored_best
    assert h0.best_metric == max(h0.val_metric) and h0.train_loss[-1] < h0.train_loss[0]
    assert h0.best_metric > (0.9 if patience > 1 else 0.75), h0.val_metric  # an early stop can come soon
