"""Train an MLP on scikit-learn's bundled breast-cancer table with kernelflow.train.fit.

    python examples/train_tabular.py [--epochs 60] [--amp bf16] [--device cuda]

Runs on the CPU in a few seconds; no download. Under torchrun the same script trains with
DistributedDataParallel (gloo on CPU, nccl on GPUs):

    torchrun --nproc_per_node 2 examples/train_tabular.py
"""

from __future__ import annotations

import argparse
import os

import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn

from kernelflow.train import fit, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--amp", choices=["bf16"], default=None)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    distributed = "RANK" in os.environ  # started by torchrun
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    # Standardise with training statistics only.
    mean, std = X_tr.mean(0), X_tr.std(0) + 1e-12
    X_tr, X_va = (X_tr - mean) / std, (X_va - mean) / std

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 2))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    history = fit(model, (X_tr, y_tr), (X_va, y_va), epochs=args.epochs, batch_size=64, metric="roc_auc",
                  patience=10, amp=args.amp, device=device)

    rank = int(os.environ.get("RANK", 0))
    if rank == 0:
        model.eval()
        with torch.no_grad():
            logits = model(torch.as_tensor(X_va, dtype=torch.float32, device=device))
        y_va_t = torch.as_tensor(y_va, device=device)
        print(f"epochs run {history.epochs_run}, best epoch {history.best_epoch}, "
              f"{history.elapsed_seconds:.2f} s")
        print(f"validation roc_auc {metrics.roc_auc(y_va_t, logits.softmax(1)[:, 1]):.4f}  "
              f"accuracy {metrics.accuracy(y_va_t, logits.argmax(1)):.4f}  "
              f"f1 {metrics.f1(y_va_t, logits.argmax(1)):.4f}")
        with open("train_history.json", "w") as f:  # JSON-serialisable record of every epoch
            f.write(history.to_json())
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
