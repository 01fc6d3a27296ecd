"""Benchmark harness used by ``kernelflow bench`` and the scripts in ``benchmarks/``.

    timing      interleaved / CPU / CUDA-event timers, GPU ceilings, the machine record
    ceilings    the CPU ceilings (copy bandwidth, fp32 matmul) measured in the run
    data        seeded synthetic inputs per suite
    compare     error measures and the sklearn-equivalent fused parameters
    peers/      numba-parallel kernels and torch eager / torch.compile compositions
    suites/     one module per op family: preprocess (+ preprocess_gpu), table, quantile, norm,
                distill, int8 (which calls ``bench.int8``)
    runner      threads, ceilings, progress bar, speedups over peers and ceiling fractions
    report      tables, JSON, PNG plots
    codepaths   the CPU code path of each family (``build_info()["code_paths"]``)
"""

from kernelflow.bench.timing import (
    copy_bandwidth_gbps,
    cpu_time_ms,
    cuda_time_ms,
    device_name,
    interleaved_ms,
    machine_info,
    matmul_tflops,
    record,
    write_results,
)

__all__ = ["copy_bandwidth_gbps", "cpu_time_ms", "cuda_time_ms", "device_name", "interleaved_ms", "machine_info",
           "matmul_tflops", "record", "write_results"]
