"""kernelflow.Preprocessor: a whole table's preprocessing, fitted from mergeable statistics and
applied as one fused pass that writes the model's input matrix.

Numeric columns: impute (mean / median / constant) -> clip (z-score / IQR / quantile bounds)
-> nonlinear transform (log1p / sqrt / Yeo-Johnson / Box-Cox) -> scale (standard / min-max /
max-abs / robust), plus optional missing-indicator columns. Categorical columns (strings, pandas /
pyarrow categoricals, or integers named as categorical): impute (most frequent / constant) ->
one-hot or ordinal, with unknown and infrequent handling. ``to_sklearn()`` builds the equivalent
scikit-learn ``ColumnTransformer``; both give the same output.

One idea per module:

    columns      column selection and reading (any table -> DataFrame -> numeric block)
    stats        the numeric statistics a fit step reads: exact (one chunk) or merged
    params       fill, clip bounds, lambdas and scale from those statistics, step after step
    categories   category counts, the per-column plan (ops' one-hot layout), code lookup
    fit          the one fit path: chunk state -> merge -> finish (fit, partial_fit, Dask)
    layout       output columns, feature names, the fused kernel's TableSpec
    persistence  the saved state (JSON + safetensors)
    sklearn      the equivalent ColumnTransformer
    estimator    the Preprocessor class
"""

from kernelflow.preprocessing.preprocessor.categories import CatPlan, json_value
from kernelflow.preprocessing.preprocessor.columns import as_frame
from kernelflow.preprocessing.preprocessor.estimator import PipelineInputs, Preprocessor

# the names earlier versions exposed here (deploy, monitor and distributed use them)
_as_frame, _json_value, _CatPlan = as_frame, json_value, CatPlan

__all__ = ["CatPlan", "PipelineInputs", "Preprocessor", "as_frame", "json_value"]

# ``kernelflow.preprocessing.distributed.fit_preprocessor`` resolves once the package is imported
from kernelflow.preprocessing import distributed as _distributed  # noqa: E402,F401
