"""GPU int8 benchmark (needs a CUDA device): W8A8 GEMM and weight-only GEMM.

    python benchmarks/gpu_quant.py [benchmarks/results/gpu_quant.json]

* W8A8 at M=N=K=4096 and 8192: kernelflow's CUDA kernel (int8 mma.sync, fused epilogue, bf16 out)
  and Triton kernel, with and without the per-row activation quantization, against torch.matmul in
  bf16 and torch._int_mm followed by a separate dequantize/bias epilogue.
* Weight-only at M in {1, 16}, N=K=8192 (reading the weight dominates: reported as GB/s of weight
  bytes too) against torch.matmul in bf16.
Correctness is checked first (CUDA and Triton against the exact reference); every time is the median
of CUDA-event timings; ratios are peer time / kernelflow time (> 1: kernelflow faster).
"""

from __future__ import annotations

import sys

import torch

from kernelflow.bench.timing import copy_bandwidth_gbps, cuda_time_ms, matmul_tflops, record, write_results
from kernelflow.ops.int8_gemm import int8_gemm, int8_gemm_reference, weight_only_gemm, weight_only_gemm_reference
from kernelflow.ops.quant import quantize_rows, quantize_rows_reference, quantize_weight


def _backends() -> list[str]:
    return [b for b in ("cuda", "triton") if b in __import__("kernelflow").available_backends("cuda")]


def check_correctness() -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    for M, N, K in [(257, 129, 100), (512, 512, 512), (16, 8192, 8192), (1, 1000, 333)]:
        x = torch.randn(M, K, device="cuda", generator=g)
        w = torch.randn(N, K, device="cuda", generator=g)
        b = torch.randn(N, device="cuda", generator=g)
        xq, xs = quantize_rows_reference(x)
        wq, ws = quantize_rows_reference(w)
        ref = int8_gemm_reference(xq, wq, xs, ws, b, 2)
        for be in _backends():
            q, s = quantize_rows(x, backend=be)
            assert torch.equal(q, xq) and torch.equal(s, xs), f"{be} quantize_rows mismatch at {(M, K)}"
            y = int8_gemm(xq, wq, xs, ws, b, "gelu", backend=be)
            err = ((y - ref).abs() / ref.abs().clamp_min(1)).max().item()
            assert err < 1e-5, f"{be} int8_gemm error {err} at {(M, N, K)}"
            for dt in (torch.bfloat16, torch.float32):
                xd = x.to(dt)
                yw = weight_only_gemm(xd, wq, ws, b, backend=be, out_dtype="float32")
                rw = weight_only_gemm_reference(xd, wq, ws, b, out_dtype=torch.float64)
                e = ((yw.double() - rw).abs().max() / rw.abs().max()).item()
                assert e < 1e-4, f"{be} weight_only error {e} at {(M, N, K)} {dt}"
    print("correctness: ok", _backends())


@torch.no_grad()
def main(out_path: str = "benchmarks/results/gpu_quant.json") -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_quant.py needs a CUDA device")
    check_correctness()
    ceil_tflops, ceil_gbps = matmul_tflops(), copy_bandwidth_gbps()
    rows: list[dict] = []
    for n in (4096, 8192):
        M = N = K = n
        flops = 2.0 * M * N * K
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(N, device="cuda", dtype=torch.float32)
        xq, xs = quantize_rows(x)
        wq, ws = quantize_weight(w)
        shape = (M, N, K)
        t_bf16 = cuda_time_ms(lambda: torch.matmul(x, w.T), repeat=20)
        rows.append(record("w8a8_gemm", "torch_matmul_bf16", t_bf16, shape, "bfloat16", flops=flops,
                           ceiling_tflops=ceil_tflops))
        wqt = wq.T  # [K, N] column-major view: the layout _int_mm wants for its second operand

        def int_mm_dequant():
            acc = torch._int_mm(xq, wqt)
            return (acc.float() * xs[:, None] * ws[None, :] + b).to(torch.bfloat16)

        t_int = None
        try:
            t_int = cuda_time_ms(int_mm_dequant, repeat=20)
            rows.append(record("w8a8_gemm", "torch_int_mm+dequant", t_int, shape, "int8", flops=flops,
                               ceiling_tflops=ceil_tflops))
        except RuntimeError as e:
            print("torch._int_mm unavailable:", e)
        for be in _backends():
            t = cuda_time_ms(lambda: int8_gemm(xq, wq, xs, ws, b, out_dtype="bfloat16", backend=be), repeat=20)

            def full():
                q, s = quantize_rows(x, backend=be)
                return int8_gemm(q, wq, s, ws, b, out_dtype="bfloat16", backend=be)

            tf = cuda_time_ms(full, repeat=20)
            extra = {"speedup_vs_bf16": round(t_bf16 / t, 3)}
            if t_int:
                extra["speedup_vs_int_mm_dequant"] = round(t_int / t, 3)
            rows.append(record("w8a8_gemm", f"kernelflow_{be}", t, shape, "int8", flops=flops,
                               ceiling_tflops=ceil_tflops, **extra))
            rows.append(record("w8a8_linear_dynamic", f"kernelflow_{be}", tf, shape, "int8", flops=flops,
                               ceiling_tflops=ceil_tflops, speedup_vs_bf16=round(t_bf16 / tf, 3)))
    N = K = 8192
    ws_list = []
    for _ in range(2):  # two weight copies: 2 x 64 MB int8 rotate past L2
        w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
        ws_list.append((w, *quantize_weight(w)))
    for M in (1, 16):
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        flops = 2.0 * M * N * K
        shape = (M, N, K)
        t_bf16 = cuda_time_ms(lambda w: torch.matmul(x, w.T), [(w,) for w, _, _ in ws_list])
        rows.append(record("weight_only_gemm", "torch_matmul_bf16", t_bf16, shape, "bfloat16",
                           nbytes=N * K * 2, flops=flops, ceiling_gbps=ceil_gbps))
        for be in _backends():
            t = cuda_time_ms(lambda wq, s: weight_only_gemm(x, wq, s, backend=be), [(wq, s) for _, wq, s in ws_list])
            rows.append(record("weight_only_gemm", f"kernelflow_{be}", t, shape, "bf16 x int8", nbytes=N * K,
                               flops=flops, ceiling_gbps=ceil_gbps, speedup_vs_bf16=round(t_bf16 / t, 3)))
    for r in rows:
        print(r)
    return write_results(out_path, "gpu_quant", rows,
                         ceilings={"matmul_bf16_tflops": round(ceil_tflops, 2), "copy_gbps": round(ceil_gbps, 1)},
                         notes="tflops count 2*M*N*K; weight-only gbps counts the weight bytes read once")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/gpu_quant.json")
