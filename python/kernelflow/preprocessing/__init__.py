"""scikit-learn-compatible preprocessing estimators on kernelflow's fused kernels."""

from kernelflow.preprocessing.impute import SimpleImputer
from kernelflow.preprocessing.scalers import MaxAbsScaler, MinMaxScaler, StandardScaler

__all__ = ["MaxAbsScaler", "MinMaxScaler", "SimpleImputer", "StandardScaler"]
