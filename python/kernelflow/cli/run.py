"""``kernelflow run``: impute + standard-scale a table with kernelflow, check it against
scikit-learn, print timings and the speedup."""

from __future__ import annotations

import argparse
import os
import sys

from kernelflow.cli._common import check_sizes, median_s as _median_s

ORDER = 10


def _load_table(path: str):
    """Numeric columns of a CSV or Parquet file as float32 [rows, cols] numpy, and their names."""
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    ext = os.path.splitext(path)[1].lower()
    if ext in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    elif ext in (".csv", ".txt", ".gz"):
        df = pd.read_csv(path)
    else:
        raise ValueError(f"--input must be a .csv or .parquet file, got {path!r}")
    num = df.select_dtypes(include="number")
    if num.shape[1] == 0:
        raise ValueError(f"{path} has no numeric columns")
    return np.ascontiguousarray(num.to_numpy(dtype=np.float32, na_value=np.nan)), list(map(str, num.columns))


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from sklearn.impute import SimpleImputer  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    import kernelflow  # noqa: PLC0415
    from kernelflow import _backend  # noqa: PLC0415
    from kernelflow.bench.preprocess import impute_scale_params, make_data, max_rel_diff  # noqa: PLC0415
    from kernelflow.ops import column_stats, numeric_transform  # noqa: PLC0415

    if args.input:
        X, names = _load_table(args.input)
        src = f"{args.input} ({len(names)} numeric columns)"
    else:
        X = make_data(args.rows, args.cols, args.nan, seed=args.seed)
        src = f"synthetic float32 [{args.rows}, {args.cols}] with {args.nan:.0%} NaN"
    rows, cols = X.shape
    # the data goes to the GPU when one is present and the backend can use it
    device = torch.device("cuda" if args.backend in ("auto", "cuda", "triton") and torch.cuda.is_available() else "cpu")
    if args.backend == "cuda" and device.type != "cuda":
        print("error: --backend cuda needs a CUDA device", file=sys.stderr)
        return 2
    backend = _backend.resolve(args.backend, device)
    print(f"data: {src}, {X.nbytes / 1e6:.1f} MB")
    print(f"kernelflow {kernelflow.__version__}: backend {backend} on {device}")

    # kernelflow: the estimators when they exist, else the same math as two fused op calls
    try:
        from kernelflow.preprocessing import SimpleImputer as KImputer  # noqa: PLC0415
        from kernelflow.preprocessing import StandardScaler as KScaler  # noqa: PLC0415

        path = "estimators (kernelflow.preprocessing SimpleImputer -> StandardScaler)"

        def kf_fit_transform(data):
            pipe = make_pipeline(KImputer(strategy="mean", backend=backend), KScaler(backend=backend))
            out = pipe.fit_transform(data)
            return out.cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)

        kf_input = X if device.type == "cpu" else torch.from_numpy(X).to(device)
    except ImportError:
        path = "fused ops (column_stats + numeric_transform)"

        def kf_fit_transform(data):
            p = impute_scale_params(column_stats(data, backend=backend), data.shape[0])
            out = numeric_transform(data, torch.as_tensor(p, device=data.device), "float32", backend=backend)
            return out.cpu().numpy()

        kf_input = torch.from_numpy(X).to(device)

    def kf_call():
        out = kf_fit_transform(kf_input)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    def sk_call():
        return make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()).fit_transform(X)

    y_kf = kf_call()  # also the warm-up (Triton compiles here)
    y_sk = sk_call()
    X64 = X.astype(np.float64)
    y_64 = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()).fit_transform(X64)
    diff_sk, diff_64 = max_rel_diff(y_sk, y_kf), max_rel_diff(y_64, y_kf)
    t_kf = _median_s(kf_call, args.repeat)
    t_sk = _median_s(sk_call, args.repeat)
    print(f"kernelflow path: {path}")
    print(f"{'':28s}{'fit+transform':>14s}")
    print(f"{'scikit-learn':28s}{t_sk * 1e3:11.1f} ms")
    print(f"{'kernelflow (' + backend + ')':28s}{t_kf * 1e3:11.1f} ms")
    where = ", kernelflow's time includes copying the result to the host" if device.type == "cuda" else ""
    print(f"speedup: {t_sk / t_kf:.2f}x  (median of {args.repeat}{where})")
    print(f"max rel diff vs scikit-learn (float32): {diff_sk:.2e}; vs the float64 pipeline: {diff_64:.2e}")
    ok = diff_64 <= 1e-5
    print("check: " + ("OK" if ok else "MISMATCH") + " (kernelflow vs the float64 pipeline <= 1e-5; scikit-learn's "
          "float32 imputer accumulates its mean in float32)")
    return 0 if ok else 1


def register(sub) -> None:
    p = sub.add_parser("run", help="impute + standard-scale a table, check against scikit-learn, time both")
    p.add_argument("--input", help="CSV or Parquet file (numeric columns are used); default: synthetic data")
    p.add_argument("--rows", type=int, default=200_000, help="synthetic rows (default 200000)")
    p.add_argument("--cols", type=int, default=16, help="synthetic columns (default 16)")
    p.add_argument("--nan", type=float, default=0.05, help="synthetic NaN fraction (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "triton", "cpu", "torch"])
    p.add_argument("--repeat", type=int, default=3, help="timed runs (median)")
    p.set_defaults(func=cmd_run, check=check_sizes)
