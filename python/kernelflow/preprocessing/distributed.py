"""Fitting across torch.distributed ranks: every rank fits on its own shard, the mergeable
statistics are all-gathered (as float64 tensors and JSON bytes: no pickle, unlike
``all_gather_object``) and merged in rank order, so every rank ends with the same fit, equal to
a fit on the concatenated shards."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.distributed as dist


def _all_gather_bytes(payload: bytes, group=None) -> list[bytes]:
    world = dist.get_world_size(group)
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else torch.device("cpu")
    data = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(dev) if payload else torch.zeros(0, dtype=torch.uint8, device=dev)
    size = torch.tensor([data.numel()], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size, group=group)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=torch.uint8, device=dev)
    padded[: data.numel()] = data
    bufs = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(bufs, padded, group=group)
    return [bytes(b[: int(s.item())].cpu().numpy().tobytes()) for b, s in zip(bufs, sizes)]


def _encode(state: dict) -> bytes:
    def conv(v):
        if isinstance(v, np.ndarray):
            return {"__array__": v.tolist(), "shape": list(v.shape)}
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return json.dumps(conv(state), allow_nan=True).encode()


def _decode(data: bytes) -> dict:
    def conv(v):
        if isinstance(v, dict) and "__array__" in v:
            return np.asarray(v["__array__"], dtype=np.float64).reshape(v["shape"])
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return conv(json.loads(data.decode()))


def fit_preprocessor(pre, local_data, group=None):
    """Fit ``kernelflow.Preprocessor`` ``pre`` on this rank's shard ``local_data`` merged with
    every other rank's (a collective call: every rank must call it). The same fit path as
    ``partial_fit`` and ``fit_dask``: each rank's chunk state, merged in rank order. Returns ``pre``."""
    from kernelflow.preprocessing.preprocessor import fit as _fit
    from kernelflow.preprocessing.preprocessor.columns import as_frame

    df, named = as_frame(local_data)
    _fit.start(pre, df, named)
    _fit.check_mergeable(pre)
    states = [_decode(b) for b in _all_gather_bytes(_encode(_fit.chunk_state(pre, df)), group)]
    _fit.finish(pre, _fit.merge_all(pre, states))
    return pre


def allreduce_stats(est, group=None):
    """Merge the statistics of a fitted StandardScaler / MinMaxScaler / MaxAbsScaler /
    SimpleImputer across ranks (each fitted on its shard; a collective call). Returns ``est``."""
    from kernelflow.ops import merge_stats

    if not hasattr(est, "stats_"):
        raise ValueError(f"{type(est).__name__} must be fitted on the local shard first")
    local = torch.from_numpy(np.ascontiguousarray(est.stats_, dtype=np.float64))
    rows = getattr(est, "_rows_seen_", 0)
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else torch.device("cpu")
    packed = torch.cat([local.flatten(), torch.tensor([float(rows)], dtype=torch.float64)]).to(dev)
    out = [torch.zeros_like(packed) for _ in range(dist.get_world_size(group))]
    dist.all_gather(out, packed, group=group)
    blocks = [o.cpu().numpy() for o in out]
    merged = blocks[0][:-1].reshape(local.shape)
    for b in blocks[1:]:
        merged = merge_stats(merged, b[:-1].reshape(local.shape))
    est.stats_ = merged
    if hasattr(est, "_rows_seen_"):
        est._rows_seen_ = int(sum(b[-1] for b in blocks))
    est._finish_fit()
    return est
