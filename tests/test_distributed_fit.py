"""Fits merged across two gloo processes on the CPU equal a single fit on all the data."""

from __future__ import annotations

import os
import socket

import numpy as np
import pandas as pd
import torch.multiprocessing as mp

from kernelflow import Preprocessor
from kernelflow.preprocessing import StandardScaler


def table(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"n{i}": rng.normal(size=n) * (i + 1) + i for i in range(3)})
    df.loc[rng.random(n) < 0.1, "n1"] = np.nan
    df["c"] = rng.choice(list("abcd"), n)
    return df


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir):
    import torch.distributed as dist

    from kernelflow.preprocessing.distributed import allreduce_stats, fit_preprocessor

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        df = table()
        shard = df.iloc[rank::world]
        if rank == 1:  # a category only this rank sees must still reach every rank
            shard = shard.copy()
            shard.iloc[0, shard.columns.get_loc("c")] = "only-on-rank-1"
        pre = fit_preprocessor(Preprocessor(add_indicator=True), shard)
        np.save(os.path.join(out_dir, f"pre{rank}.npy"), pre.transform(df))
        sc = allreduce_stats(StandardScaler().fit(shard[["n0", "n1", "n2"]].to_numpy()))
        np.save(os.path.join(out_dir, f"sc{rank}.npy"), np.stack([sc.mean_, sc.scale_]))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_fit(tmp_path):
    world = 2
    mp.spawn(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    df = table()
    df2 = df.copy()
    df2.iloc[1, df2.columns.get_loc("c")] = "only-on-rank-1"  # row 1 is rank 1's first row
    full = Preprocessor(add_indicator=True).fit(df2)
    expected = full.transform(df)
    for r in range(world):
        np.testing.assert_allclose(np.load(tmp_path / f"pre{r}.npy"), expected, rtol=1e-6, atol=1e-6)
    sc = StandardScaler().fit(df[["n0", "n1", "n2"]].to_numpy())
    for r in range(world):
        np.testing.assert_allclose(np.load(tmp_path / f"sc{r}.npy"), np.stack([sc.mean_, sc.scale_]), rtol=1e-12)
