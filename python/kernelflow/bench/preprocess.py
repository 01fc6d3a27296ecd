"""The preprocessing benchmark's public names, kept at this path for the scripts in
``benchmarks/``: the suite lives in ``suites.preprocess`` (CPU) and ``suites.preprocess_gpu``,
its data in ``data``, the comparisons in ``compare``, the tables in ``report``."""

from kernelflow.bench.compare import impute_scale_params, max_rel_diff
from kernelflow.bench.data import make_data
from kernelflow.bench.report import format_table
from kernelflow.bench.suites.preprocess import OPS, implementations, run_cpu
from kernelflow.bench.suites.preprocess_gpu import run_gpu

__all__ = ["OPS", "format_table", "implementations", "impute_scale_params", "make_data", "max_rel_diff", "run_cpu",
           "run_gpu"]
