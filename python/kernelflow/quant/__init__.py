"""Post-training int8 quantization of PyTorch models: ``quantize`` swaps nn.Linear layers for
``kernelflow.nn.Int8Linear`` and reports each layer's signal-to-noise ratio."""

from kernelflow.quant.calibrate import activation_scale, collect_inputs, snr_db
from kernelflow.quant.quantize import LayerReport, QuantReport, quantize

__all__ = ["LayerReport", "QuantReport", "activation_scale", "collect_inputs", "quantize", "snr_db"]
