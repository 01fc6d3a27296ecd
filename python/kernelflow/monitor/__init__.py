"""Drift monitoring: statistics of served or new data against the training data's profile."""

from kernelflow.monitor.drift_stats import DriftState, psi
from kernelflow.monitor.monitor import DriftMonitor, DriftReference, as_reference

__all__ = ["DriftMonitor", "DriftReference", "DriftState", "as_reference", "psi"]
