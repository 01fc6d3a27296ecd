"""Benchmark harness used by ``kernelflow bench`` and the scripts in ``benchmarks/``."""

from kernelflow.bench.timing import (
    copy_bandwidth_gbps,
    cpu_time_ms,
    cuda_time_ms,
    device_name,
    machine_info,
    matmul_tflops,
    record,
    write_results,
)

__all__ = ["copy_bandwidth_gbps", "cpu_time_ms", "cuda_time_ms", "device_name", "machine_info",
           "matmul_tflops", "record", "write_results"]
