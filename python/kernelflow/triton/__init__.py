"""Triton kernels, one module per op family. Imported only when the triton backend is used."""
