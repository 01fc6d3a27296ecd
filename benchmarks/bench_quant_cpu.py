"""CPU int8 GEMM benchmark: kernelflow's C++ W8A8 GEMM (exact int32 accumulation, fused epilogue)
and weight-only GEMM against torch float32 matmul (F.linear) and torch's own dynamic int8
quantization (torch.ao.quantization.quantize_dynamic on an nn.Linear), same data, same process.

    python benchmarks/bench_quant_cpu.py [out.json]
    KERNELFLOW_BENCH_THREADS=1 python benchmarks/bench_quant_cpu.py   # one thread for every library

On a shared machine, one thread per library gives stable numbers (spinning OpenMP threads
that lose their core to another process inflate times to scheduler quanta). Ratios are speedups (peer time / kernelflow time: > 1 means kernelflow is faster).
"""

from __future__ import annotations

import os
import sys
import warnings

_THREADS = os.environ.get("KERNELFLOW_BENCH_THREADS")
if _THREADS:  # before torch and the extension start their OpenMP runtimes
    os.environ["OMP_NUM_THREADS"] = _THREADS

import torch  # noqa: E402
from torch import nn

if _THREADS:
    torch.set_num_threads(int(_THREADS))

from kernelflow.bench.timing import cpu_time_ms, machine_info, record, write_results
from kernelflow.ops.int8_gemm import int8_gemm, int8_gemm_exact, weight_only_gemm
from kernelflow.ops.quant import quantize_rows, quantize_weight

SHAPES = [(1, 4096, 4096), (16, 4096, 4096), (128, 1024, 1024), (512, 1024, 1024), (1024, 2048, 2048)]


def torch_dynamic_linear(lin: nn.Linear):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic  # noqa: PLC0415

            return quantize_dynamic(nn.Sequential(lin), {nn.Linear}, dtype=torch.qint8)
    except Exception as e:  # removed in a future torch
        print(f"torch dynamic quantization unavailable: {e}")
        return None


@torch.no_grad()
def main(out_path: str = "benchmarks/results/quant_cpu.json") -> dict:
    torch.manual_seed(0)
    rows = []
    for M, N, K in SHAPES:
        x = torch.randn(M, K)
        lin = nn.Linear(K, N)
        w, b = lin.weight.detach(), lin.bias.detach()
        wq, ws = quantize_weight(w, backend="cpu")
        xq, xs = quantize_rows(x, backend="cpu")
        # correctness first: exact accumulators, and the fused epilogue against the int64 reference
        ref = int8_gemm_exact(xq, wq).float() * xs[:, None] * ws[None, :] + b
        got = int8_gemm(xq, wq, xs, ws, b, backend="cpu")
        assert torch.allclose(got, ref, rtol=1e-6, atol=1e-6), "int8 GEMM mismatch"
        flops = 2.0 * M * N * K
        reps = max(7, min(50, int(2e10 / flops)))
        t_f32 = cpu_time_ms(lambda: torch.nn.functional.linear(x, w, b), repeat=reps)
        t_gemm = cpu_time_ms(lambda: int8_gemm(xq, wq, xs, ws, b, backend="cpu"), repeat=reps)

        def kf_w8a8():
            q, s = quantize_rows(x, backend="cpu")
            return int8_gemm(q, wq, s, ws, b, backend="cpu")

        t_w8a8 = cpu_time_ms(kf_w8a8, repeat=reps)
        t_wo = cpu_time_ms(lambda: weight_only_gemm(x, wq, ws, b, backend="cpu"), repeat=reps)
        shape = (M, N, K)
        rows += [
            record("linear", "torch_f32", t_f32, shape, "float32", flops=flops),
            record("linear", "kernelflow_int8_gemm_only", t_gemm, shape, "int8", flops=flops,
                   speedup_vs_torch_f32=round(t_f32 / t_gemm, 3)),
            record("linear", "kernelflow_w8a8_dynamic", t_w8a8, shape, "int8", flops=flops,
                   speedup_vs_torch_f32=round(t_f32 / t_w8a8, 3)),
            record("linear", "kernelflow_weight_only", t_wo, shape, "float32+int8w", flops=flops,
                   speedup_vs_torch_f32=round(t_f32 / t_wo, 3)),
        ]
        qd = torch_dynamic_linear(lin)
        if qd is not None:
            yq = qd(x)
            snr_t = float(10 * torch.log10(ref.pow(2).sum() / (yq - ref).pow(2).sum().clamp_min(1e-30)))
            t_dyn = cpu_time_ms(lambda: qd(x), repeat=reps)
            rows.append(record("linear", "torch_quantize_dynamic_int8", t_dyn, shape, "int8", flops=flops,
                               speedup_vs_torch_f32=round(t_f32 / t_dyn, 3), agreement_with_kf_snr_db=round(snr_t, 1)))
            rows[-3]["speedup_vs_torch_dynamic_int8"] = round(t_dyn / t_w8a8, 3)
        print(f"M={M:5d} N={N:5d} K={K:5d}  f32 {t_f32:8.3f} ms  kf int8 gemm {t_gemm:8.3f}  kf w8a8 {t_w8a8:8.3f}"
              f"  kf w-only {t_wo:8.3f}" + (f"  torch dyn int8 {t_dyn:8.3f}" if qd is not None else ""))
    notes = ("CPU only (no GPU on this machine). ms = median wall time; speedup_* = peer ms / kernelflow ms. "
             "kernelflow_w8a8_dynamic includes the per-row activation quantization kernel; "
             f"threads per library = {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}).")
    return write_results(out_path, "quant_cpu", rows, notes=notes)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/quant_cpu.json")
    print(machine_info()["device"])
