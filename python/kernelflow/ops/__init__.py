"""kernelflow ops: ``torch.library`` custom ops (``kernelflow::<name>``) with fake kernels,
autograd where gradients flow, and one kernel per backend (cuda / triton / cpu / torch),
registered through ``kernelflow.ops._registry``. Each family lives in its own module next to
its float64 reference; the one-hot / ordinal layouts in ``layouts``."""

from kernelflow.ops.categories import (
    MISSING,
    UNKNOWN,
    EncodedColumn,
    encode_strings,
    infrequent_mapping,
    infrequent_mask,
    integer_categories,
    map_codes,
)
from kernelflow.ops.norm import layer_norm, layer_norm_reference, rms_norm, rms_norm_reference
from kernelflow.ops.onehot import (
    OneHotLayout,
    OrdinalLayout,
    one_hot,
    one_hot_reference,
    ordinal_encode,
    ordinal_encode_reference,
)
from kernelflow.ops.distill import distill_loss, distill_loss_reference
from kernelflow.ops.int8_gemm import (
    int8_gemm,
    int8_gemm_exact,
    int8_gemm_reference,
    weight_only_gemm,
    weight_only_gemm_reference,
)
from kernelflow.ops.quant import (
    dequantize,
    dequantize_rows_reference,
    quantize_activation,
    quantize_rows,
    quantize_rows_reference,
    quantize_static,
    quantize_static_reference,
    quantize_weight,
)
from kernelflow.ops.table import FN_CODES, TableSpec, nonlinear_reference, table_transform, table_transform_reference
from kernelflow.ops.quantile import column_quantiles, column_quantiles_reference
from kernelflow.ops.sketch import QuantileSketch
from kernelflow.ops.stats import column_stats, column_stats_reference, merge_stats
from kernelflow.ops.transform import (
    numeric_transform,
    numeric_transform_reference,
    transform_params,
)

__all__ = [
    "layer_norm", "layer_norm_reference", "rms_norm", "rms_norm_reference",
    "column_quantiles", "column_quantiles_reference", "QuantileSketch",
    "distill_loss", "distill_loss_reference",
    "FN_CODES", "TableSpec", "nonlinear_reference", "table_transform", "table_transform_reference",
    "int8_gemm", "int8_gemm_exact", "int8_gemm_reference", "weight_only_gemm", "weight_only_gemm_reference",
    "dequantize", "dequantize_rows_reference", "quantize_activation", "quantize_rows", "quantize_rows_reference",
    "quantize_static", "quantize_static_reference", "quantize_weight",
    "MISSING", "UNKNOWN", "EncodedColumn", "encode_strings", "infrequent_mapping", "infrequent_mask",
    "integer_categories", "map_codes",
    "OneHotLayout", "OrdinalLayout", "one_hot", "one_hot_reference", "ordinal_encode", "ordinal_encode_reference",
    "column_stats", "column_stats_reference", "merge_stats",
    "numeric_transform", "numeric_transform_reference", "transform_params",
]
from kernelflow.ops.sparse import (  # noqa: E402
    sparse_apply_params,
    sparse_column_apply,
    sparse_column_apply_reference,
    sparse_column_quantiles,
    sparse_column_quantiles_reference,
    sparse_column_stats,
    sparse_column_stats_reference,
)
from kernelflow.ops.weighted import weighted_column_stats, weighted_column_stats_reference  # noqa: E402

__all__ += ["sparse_apply_params", "sparse_column_apply", "sparse_column_apply_reference", "sparse_column_quantiles",
            "sparse_column_quantiles_reference", "sparse_column_stats", "sparse_column_stats_reference",
            "weighted_column_stats", "weighted_column_stats_reference"]
