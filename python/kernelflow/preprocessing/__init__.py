"""scikit-learn-compatible preprocessing estimators on kernelflow's fused kernels."""

from kernelflow.preprocessing.encoders import OneHotEncoder, OrdinalEncoder
from kernelflow.preprocessing.impute import SimpleImputer
from kernelflow.preprocessing.power import PowerTransformer
from kernelflow.preprocessing.preprocessor import Preprocessor
from kernelflow.preprocessing.robust import OutlierClipper, RobustScaler
from kernelflow.preprocessing.scalers import MaxAbsScaler, MinMaxScaler, StandardScaler

__all__ = ["MaxAbsScaler", "MinMaxScaler", "OneHotEncoder", "OrdinalEncoder", "OutlierClipper", "PowerTransformer", "Preprocessor",
           "RobustScaler", "SimpleImputer", "StandardScaler"]
