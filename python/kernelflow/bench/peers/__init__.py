"""Peer implementations the suites measure kernelflow against: numba-parallel kernels of the
same formulas (``numba_kernels``) and the torch eager / ``torch.compile`` compositions
(``torch_peers``). scikit-learn and numpy peers are the libraries' own calls, in each suite."""
