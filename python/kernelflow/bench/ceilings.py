"""The CPU ceilings every result is reported against, measured in the same run.

- copy bandwidth (GB/s, bytes read + bytes written): the larger of a multi-threaded torch copy and
  a single-threaded numpy copy between buffers far larger than the last-level cache, alternating
  two sources so no run re-reads what the previous one left in cache. A memory-bound kernel's
  ``frac_copy`` is its GB/s (counting the bytes it must move) over this.
- fp32 matmul (GFLOP/s): a square torch matmul at the thread count in force, the compute
  ceiling for ``frac_fp32_matmul`` of the GEMM-like suites.

The GPU ceilings are ``timing.copy_bandwidth_gbps`` and ``timing.matmul_tflops``.
"""

from __future__ import annotations

import numpy as np
import torch

from kernelflow.bench.timing import interleaved_ms


def cpu_copy_gbps(nbytes: int = 256 << 20, repeat: int = 5) -> dict[str, float]:
    """{"copy_gbps", "copy_torch_gbps", "copy_numpy_gbps", "copy_bytes"} from float32 buffers of
    nbytes each (two sources alternated, one destination)."""
    n = max(1, nbytes // 4)
    srcs = [torch.rand(n) for _ in range(2)]  # random, never zeros (a zero page can be special)
    dst = torch.empty(n)
    nsrc, ndst = [s.numpy() for s in srcs], dst.numpy()
    state = {"i": 0}

    def torch_copy():
        state["i"] ^= 1
        dst.copy_(srcs[state["i"]])

    def numpy_copy():
        state["i"] ^= 1
        np.copyto(ndst, nsrc[state["i"]])

    t = interleaved_ms({"torch": torch_copy, "numpy": numpy_copy}, repeat=repeat, warmup=1)
    gb = 2 * n * 4 / 1e9
    tg, ng = gb / (t["torch"] * 1e-3), gb / (t["numpy"] * 1e-3)
    return {"copy_gbps": round(max(tg, ng), 2), "copy_torch_gbps": round(tg, 2), "copy_numpy_gbps": round(ng, 2),
            "copy_bytes": 2 * n * 4}


def cpu_matmul_gflops(n: int = 2048, repeat: int = 3) -> dict[str, float]:
    """{"fp32_matmul_gflops", "matmul_n"}: torch fp32 [n, n] @ [n, n] on random data."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    t = interleaved_ms({"mm": lambda: a @ b}, repeat=repeat, warmup=1)["mm"]
    return {"fp32_matmul_gflops": round(2 * n**3 / (t * 1e-3) / 1e9, 2), "matmul_n": n}


def cpu_ceilings(quick: bool = False, repeat: int = 5) -> dict[str, float]:
    """Both CPU ceilings; ``quick`` uses small buffers (a smoke test: the numbers then measure
    cache, not memory)."""
    c = cpu_copy_gbps(4 << 20 if quick else 256 << 20, repeat=max(3, repeat))
    c.update(cpu_matmul_gflops(256 if quick else 2048, repeat=max(3, repeat // 2)))
    c["quick"] = bool(quick)
    return c
