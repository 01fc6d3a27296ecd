"""Every module here registers its cases with ``_case.case`` on import."""

from . import distill, estimators, io, nn, ops, preprocessor, quant, train  # noqa: F401
