"""Shared pieces of the serving tests: a real dataset, a bundle, a server fixture's skip rule."""

from __future__ import annotations

import os

import numpy as np
import pytest

REQUIRED_ENV = "KERNELFLOW_SERVE_REQUIRED"  # set by .ci/serve: no server is a failure there, not a skip


def penguins():
    """palmerpenguins: numeric columns with NaN, string categories with NaN (species is the target)."""
    pp = pytest.importorskip("palmerpenguins")
    df = pp.load_penguins()
    df = df[df["species"].notna()].reset_index(drop=True)
    y = df.pop("species")
    classes = sorted(y.unique())
    return df, np.asarray([classes.index(v) for v in y]), classes


def fit_pipeline(df, y, n_classes, *, handle_unknown="ignore", seed=0, epochs=60, **pre_kw):
    """A fitted Preprocessor and a small torch classifier on its output (trained briefly: the
    predictions only need to be a real model's, not a good one's)."""
    import torch

    import kernelflow

    pre = kernelflow.Preprocessor(handle_unknown=handle_unknown, **pre_kw).fit(df)
    X = torch.as_tensor(pre.transform(df))
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, n_classes))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    yt = torch.as_tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X), yt).backward()
        opt.step()
    return pre, model.eval()


def make_bundle(path, df=None, *, seed=0, handle_unknown="ignore", reference=True, **pre_kw):
    """save_bundle of a penguins pipeline; with reference=True also the training data's drift
    profile (drift_reference.json) next to it. Returns (bundle dir, preprocessor, train frame)."""
    from kernelflow.deploy import save_bundle
    from kernelflow.monitor import DriftReference

    if df is None:
        df, y, classes = penguins()
    else:
        y, classes = np.zeros(len(df), dtype=np.int64), [0, 1]
    pre, model = fit_pipeline(df, y, len(classes), handle_unknown=handle_unknown, seed=seed, **pre_kw)
    save_bundle(path, pre, model, classes=classes)
    if reference:
        DriftReference.fit(pre, df).save(os.path.join(path, "drift_reference.json"))
    return path, pre, df


def local_predict(bundle_dir, df):
    from kernelflow.deploy import OnnxRunner

    return OnnxRunner(bundle_dir).predict(df)


def server_or_skip():
    """The Triton install the tests use, or skip (fail under .ci/serve) with the reason."""
    from kernelflow.deploy.server import ServerError, require_server

    try:
        return require_server()
    except ServerError as e:
        if os.environ.get(REQUIRED_ENV) == "1":
            pytest.fail(f"{REQUIRED_ENV}=1 but no Triton server can start: {e}")
        pytest.skip(f"no Triton Inference Server here ({e})")
