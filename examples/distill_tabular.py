"""Distil a tabular teacher MLP into a small student inside your own training loop.

Two ways to use kernelflow.distill in an existing loop are shown:
  1. DistillationLoss as a drop-in loss: you run the teacher (under no_grad) and the student.
  2. Distiller.compute_loss: it runs the frozen teacher, the student and (optionally) feature
     matching through forward hooks; you keep your optimizer, scheduler and backward/step.

Run: python examples/distill_tabular.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from kernelflow.distill import DistillationLoss, Distiller


def mlp(d_in: int, hidden: int, n_layers: int, d_out: int) -> nn.Sequential:
    layers, d = [], d_in
    for _ in range(n_layers):
        layers += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    return nn.Sequential(*layers, nn.Linear(d, d_out))


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    torch.manual_seed(0)
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    mu, sd = X_tr.mean(0), X_tr.std(0) + 1e-6
    x_tr = torch.tensor((X_tr - mu) / sd, dtype=torch.float32)
    x_te = torch.tensor((X_te - mu) / sd, dtype=torch.float32)
    y_tr, y_te = torch.tensor(y_tr), torch.tensor(y_te)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_tr, y_tr), batch_size=128, shuffle=True)

    # --- the teacher: trained as usual
    teacher = mlp(64, 256, 2, 10)
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for _ in range(60):
        teacher.train()
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(teacher(xb), yb).backward()
            opt.step()
    print(f"teacher  test accuracy {evaluate(teacher, x_te, y_te):.4f}")
    teacher.eval()

    # --- 1. DistillationLoss as a drop-in replacement for F.cross_entropy
    student = mlp(64, 16, 1, 10)
    criterion = DistillationLoss(temperature=2.0, alpha=0.5)  # fused loss + gradient kernel
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for _ in range(100):
        student.train()
        for xb, yb in loader:
            with torch.no_grad():
                t_logits = teacher(xb)
            loss = criterion(student(xb), t_logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    print(f"student (DistillationLoss)         test accuracy {evaluate(student, x_te, y_te):.4f}")

    # --- 2. Distiller.compute_loss, with the student's hidden layer matched to the teacher's
    # second hidden layer through a learned 16 -> 256 projection
    student = mlp(64, 16, 1, 10)
    distiller = Distiller(teacher, student, loss=DistillationLoss(temperature=2.0, alpha=0.5),
                          feature_pairs={"0": "2"}, feature_weight=0.1)
    # your own optimizer: include the projections (distiller.trainable_parameters())
    opt = torch.optim.Adam(distiller.trainable_parameters(), lr=3e-3)
    for epoch in range(100):
        distiller.train()  # the teacher stays in eval mode
        for xb, yb in loader:
            loss = distiller.compute_loss(xb, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 25 == 0:
            print(f"  epoch {epoch:3d} " + " ".join(f"{k}={float(v):.4f}" for k, v in distiller.last_terms.items()))
    print(f"student (Distiller, feature match) test accuracy {evaluate(student, x_te, y_te):.4f}")


if __name__ == "__main__":
    main()
