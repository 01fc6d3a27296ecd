"""Does distillation help a small student? Teacher MLP -> student MLP (<= 1/4 of the teacher's
parameters) vs the same student trained on the labels alone, on held-out data, over 3 seeds.

Datasets (no network): scikit-learn's ``load_digits`` (8x8 handwritten digits, 10 classes) and a
hard ``make_classification`` problem (6000 rows, 40 features of which 15 informative and 10
redundant, 10 classes with 2 clusters each, 5% flipped labels).
Per seed: split train / validation / test (60/20/20, stratified); standardise on train; train
the teacher (early-stopped on the validation split); pick (temperature, alpha) for the distilled student on the VALIDATION split; report
test accuracy of the baseline student and of the distilled student trained with the chosen
setting. Both students: same architecture, initialisation seed, optimizer, learning rate, batch
size and number of epochs; the baseline is the same loop with plain cross-entropy.

Run: PYTHONPATH=python python benchmarks/distill_experiment.py [out.json]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits, make_classification
from sklearn.model_selection import train_test_split
from torch import nn

from kernelflow.bench.timing import write_results
from kernelflow.distill import DistillationLoss, Distiller

SEEDS = (0, 1, 2)
GRID = [(T, a) for T in (2.0, 4.0) for a in (0.5, 0.9)]  # (temperature, alpha)
EPOCHS = {"teacher": 150, "student": 150}
BATCH = 128
LR = 3e-3


def mlp(d_in: int, hidden: list[int], d_out: int, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = d_in
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        d = h
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def batches(n: int, seed: int, epochs: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, BATCH):
            yield perm[i:i + BATCH]


def train_plain(model: nn.Module, x, y, seed: int, epochs: int, wd: float = 0.0) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=wd)
    model.train()
    for idx in batches(len(x), seed, epochs):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model


def train_teacher(model: nn.Module, x, y, xva, yva, seed: int, epochs: int) -> nn.Module:
    """Adam with dropout and weight decay, early-stopped on the validation split (checked every 5 epochs)."""
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=1e-4)
    best, best_state = -1.0, None
    steps_per_epoch = (len(x) + BATCH - 1) // BATCH
    for i, idx in enumerate(batches(len(x), seed, epochs)):
        model.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        if (i + 1) % (5 * steps_per_epoch) == 0:
            acc = accuracy(model, xva, yva)
            if acc > best:
                best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model.eval()


def train_distilled(teacher: nn.Module, student: nn.Module, x, y, seed: int, epochs: int, T: float, alpha: float):
    # same optimizer, lr, batches and epochs as train_plain: only the loss differs
    opt = torch.optim.Adam(student.parameters(), lr=LR)
    d = Distiller(teacher, student, loss=DistillationLoss(temperature=T, alpha=alpha), optimizer=opt)
    for idx in batches(len(x), seed, epochs):
        d.step(x[idx], y[idx])
    return student


def load(name: str, seed: int):
    if name == "digits":
        X, y = load_digits(return_X_y=True)
    else:
        X, y = make_classification(n_samples=6000, n_features=40, n_informative=15, n_redundant=10, n_classes=10,
                                   n_clusters_per_class=2, class_sep=1.2, flip_y=0.05, random_state=1234)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    X_tr, X_va, y_tr, y_va = train_test_split(X_tr, y_tr, test_size=0.25, random_state=seed, stratify=y_tr)
    mu, sd = X_tr.mean(0), X_tr.std(0) + 1e-6
    f = lambda a: torch.tensor((a - mu) / sd, dtype=torch.float32)  # noqa: E731
    g = lambda a: torch.tensor(a, dtype=torch.int64)  # noqa: E731
    return f(X_tr), g(y_tr), f(X_va), g(y_va), f(X_te), g(y_te), int(y.max()) + 1


ARCH = {  # (teacher hidden, student hidden): students at ~6-8% of the teacher's parameters
    "digits": ([256, 256], [64]),
    "make_classification_hard": ([512, 512], [128, 128]),  # 40 features, 10 classes
}


def run_dataset(name: str) -> dict:
    t_hidden, s_hidden = ARCH[name]
    per_seed = []
    for seed in SEEDS:
        xtr, ytr, xva, yva, xte, yte, k = load(name, seed)
        d = xtr.shape[1]
        torch.manual_seed(1000 + seed)
        teacher = train_teacher(mlp(d, t_hidden, k, dropout=0.3), xtr, ytr, xva, yva, seed, EPOCHS["teacher"])
        torch.manual_seed(2000 + seed)
        init = mlp(d, s_hidden, k).state_dict()

        def fresh() -> nn.Module:
            m = mlp(d, s_hidden, k)
            m.load_state_dict(init)
            return m

        base = train_plain(fresh(), xtr, ytr, seed, EPOCHS["student"])
        val_scores, models = {}, {}
        for T, a in GRID:
            # training is deterministic given the seed, so the selected model is reused, not retrained
            models[(T, a)] = train_distilled(teacher, fresh(), xtr, ytr, seed, EPOCHS["student"], T, a)
            val_scores[(T, a)] = accuracy(models[(T, a)], xva, yva)
        T_best, a_best = max(GRID, key=lambda c: (val_scores[c], -GRID.index(c)))  # ties: first in grid
        dist = models[(T_best, a_best)]
        row = {
            "seed": seed,
            "teacher_test_acc": accuracy(teacher, xte, yte),
            "student_baseline_test_acc": accuracy(base, xte, yte),
            "student_distilled_test_acc": accuracy(dist, xte, yte),
            "student_baseline_val_acc": accuracy(base, xva, yva),
            "chosen_temperature": T_best, "chosen_alpha": a_best,
            "val_acc_grid": {f"T={T},alpha={a}": v for (T, a), v in val_scores.items()},
            "n_train": len(xtr), "n_val": len(xva), "n_test": len(xte),
        }
        per_seed.append(row)
        print(name, {k2: v for k2, v in row.items() if k2 != "val_acc_grid"}, flush=True)
    mean = lambda key: float(np.mean([r[key] for r in per_seed]))  # noqa: E731
    t_p = n_params(mlp(xtr.shape[1], t_hidden, k))
    s_p = n_params(mlp(xtr.shape[1], s_hidden, k))
    return {
        "dataset": name, "teacher_hidden": t_hidden, "student_hidden": s_hidden,
        "teacher_params": t_p, "student_params": s_p, "student_to_teacher_params": round(s_p / t_p, 4),
        "mean_teacher_test_acc": mean("teacher_test_acc"),
        "mean_student_baseline_test_acc": mean("student_baseline_test_acc"),
        "mean_student_distilled_test_acc": mean("student_distilled_test_acc"),
        "mean_gain": mean("student_distilled_test_acc") - mean("student_baseline_test_acc"),
        "per_seed": per_seed,
    }


# An earlier run of this script with much smaller students (digits [16]: 1.4% of the teacher;
# synthetic [32]: 0.6%) and otherwise identical settings found no gain; kept here for the record.
EARLIER = ("Earlier run with tiny students (digits hidden [16] = 1210 params, synthetic [32] = 1642 params), same "
           "protocol: digits baseline 0.9667 vs distilled 0.9667; synthetic baseline 0.6297 vs distilled 0.6247 "
           "(mean test accuracy over the 3 seeds).")


def main(out_path: str = "benchmarks/results/distill_cpu.json") -> dict:
    torch.set_num_threads(1)  # tiny matmuls: threading costs more than it saves
    t0 = time.perf_counter()
    rows = [run_dataset(n) for n in ARCH]
    notes = (f"Adam lr={LR}, batch {BATCH}, {EPOCHS['student']} epochs for every student (baseline: cross-entropy; "
             f"distilled: kernelflow DistillationLoss via Distiller, mean reduction); teacher up to {EPOCHS['teacher']} "
             f"epochs with dropout 0.3 and weight decay 1e-4, early-stopped on validation accuracy. (temperature, alpha) picked per seed on the validation "
             f"split from {GRID}. Splits 60/20/20 stratified; features standardised on train. "
             f"{EARLIER} "
             f"Wall time {time.perf_counter() - t0:.1f} s.")
    doc = write_results(out_path, "distill_experiment", rows, notes=notes)
    for r in rows:
        print(r["dataset"], "teacher", round(r["mean_teacher_test_acc"], 4), "baseline",
              round(r["mean_student_baseline_test_acc"], 4), "distilled", round(r["mean_student_distilled_test_acc"], 4),
              "params", r["student_params"], "/", r["teacher_params"])
    return doc


if __name__ == "__main__":
    main(*sys.argv[1:])
