"""torch.nn modules backed by kernelflow ops."""
