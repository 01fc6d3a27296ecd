"""int8 suite: ``Int8Linear`` (w8a8 and weight-only) against torch fp32 ``nn.Linear`` and torch's
dynamic int8, measured by ``kernelflow.bench.int8.run_int8`` (its own interleaving, its own fp32
matmul ceiling at M = 1024, and the exact integer-reference check of the W8A8 output)."""

from __future__ import annotations


def run(cfg, progress) -> dict:
    from kernelflow.bench.int8 import run_int8  # noqa: PLC0415

    res = run_int8(tuple(cfg.int8_m), cfg.int8_k, cfg.int8_k, max(1, cfg.repeat), progress=progress)
    failures = [] if res["exact"] else ["Int8Linear w8a8 differs from the exact integer reference"]
    notes = (f"K = N = {cfg.int8_k}, M in {list(cfg.int8_m)}; GOP/s = 2 M N K / time; frac_fp32_matmul against "
             "torch fp32 [1024, K] @ [K, N] in the same run; path = the int8 GEMM code path that ran.")
    return {"rows": res["rows"], "skipped": res["skipped"], "checks": {"w8a8_exact": res["exact"]},
            "failures": failures, "notes": notes, "ceilings": res["ceilings"]}
