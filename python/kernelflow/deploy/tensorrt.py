"""TensorRT engines from exported ONNX graphs, and a runner over torch CUDA tensors.

Written against the TensorRT 10 and 11 Python APIs: the network is *strongly typed*
(``NetworkDefinitionCreationFlag.STRONGLY_TYPED``), so precision comes from the ONNX graph's
own types and QDQ nodes (a float16 export runs float16 GEMMs; a QDQ export runs int8 GEMMs)
and no FP16 / BF16 / INT8 builder flag or calibrator is used (TensorRT 11 removed them). One
optimization profile covers the dynamic batch (min / opt / max); a timing cache file, when
given, is read before and written after the build, so rebuilding on the same GPU is fast.
Inference: ``set_input_shape`` + ``set_tensor_address`` for every I/O tensor, then
``execute_async_v3`` on the current torch CUDA stream.
"""

from __future__ import annotations

import os
from pathlib import Path

_UNAVAILABLE = ("TensorRT is not importable here ({why}): install the `tensorrt` wheel matching your CUDA "
                "(pip install 'kernelflow[tensorrt]') on a machine with an NVIDIA GPU")


def _trt():
    try:
        import tensorrt as trt  # noqa: PLC0415
    except Exception as e:  # ImportError, or its libraries failing to load
        raise RuntimeError(_UNAVAILABLE.format(why=f"{type(e).__name__}: {e}")) from e
    return trt


def tensorrt_version() -> str | None:
    """The installed TensorRT version (from package metadata, without importing it), or None."""
    import importlib.metadata as md

    for name in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt_cu13", "tensorrt_cu12"):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            continue
    return None


def _check_batches(min_batch, opt_batch, max_batch) -> tuple[int, int, int]:
    vals = (min_batch, opt_batch, max_batch)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        raise TypeError(f"min_batch, opt_batch and max_batch must be ints, got {vals}")
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= opt_batch <= max_batch, got {vals}")
    return vals


def build_engine(onnx_path, engine_path, *, min_batch: int = 1, opt_batch: int = 256, max_batch: int = 4096,
                 workspace_gb: float = 4.0, timing_cache=None, verbose: bool = False) -> Path:
    """Parse ``onnx_path`` (an ``export_onnx`` graph, external data beside it is read) into a
    strongly typed TensorRT network, build it for batches [min_batch, max_batch] (tuned at
    opt_batch) with at most ``workspace_gb`` GiB of workspace, and write the serialized engine.
    ``timing_cache``: a file path, read when it exists and written after the build. Returns
    the engine path. Raises RuntimeError with the parser's errors when TensorRT rejects the graph."""
    mn, opt, mx = _check_batches(min_batch, opt_batch, max_batch)
    if not (isinstance(workspace_gb, (int, float)) and workspace_gb > 0):
        raise ValueError(f"workspace_gb must be a positive number, got {workspace_gb!r}")
    onnx_path = Path(os.fspath(onnx_path))
    trt = _trt()
    if not onnx_path.is_file():
        raise ValueError(f"onnx_path {str(onnx_path)!r} is not a file")
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path.name}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        t = network.get_input(i)
        dims = list(t.shape)
        if any(d < 0 for d in dims[1:]):
            raise ValueError(f"input {t.name!r} has dynamic dimensions besides the batch: {dims}")
        profile.set_shape(t.name, [mn] + dims[1:], [opt] + dims[1:], [mx] + dims[1:])
    config.add_optimization_profile(profile)
    cache = None
    if timing_cache is not None:
        tc = Path(os.fspath(timing_cache))
        cache = config.create_timing_cache(tc.read_bytes() if tc.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_path.name} (see its log above)")
    engine_path = Path(os.fspath(engine_path))
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(memoryview(blob)))
    if cache is not None:
        tc.parent.mkdir(parents=True, exist_ok=True)
        tc.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    return engine_path


class TensorRTRunner:
    """Run a serialized engine on torch CUDA tensors: ``runner(num, cat)`` or
    ``runner.run(num=..., cat=...)`` -> ``output`` (a new CUDA tensor), on the current stream."""

    def __init__(self, engine_path, device=None) -> None:
        import torch

        trt = _trt()
        if not torch.cuda.is_available():
            raise RuntimeError("TensorRTRunner needs a CUDA device")
        self.device = torch.device(device if device is not None else "cuda")
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            self.runtime = trt.Runtime(self._logger)
            self.engine = self.runtime.deserialize_cuda_engine(Path(os.fspath(engine_path)).read_bytes())
            if self.engine is None:
                raise RuntimeError(f"TensorRT could not load the engine {str(engine_path)!r} "
                                   "(built by another TensorRT version or for another GPU?)")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}

    def input_dtype(self, name: str):
        return self._dtypes[name]

    def run(self, *args, **kwargs):
        """Inputs by position (the engine's input order) or by name; returns the first output,
        or a dict of every output when the engine has several."""
        import torch

        if args and kwargs:
            raise TypeError("pass the inputs by position or by name, not both")
        feeds = dict(zip(self.input_names, args)) if args else dict(kwargs)
        if set(feeds) != set(self.input_names):
            raise ValueError(f"the engine takes {self.input_names}, got {sorted(feeds)}")
        keep = []  # converted inputs must live until the engine has run
        for name in self.input_names:
            t = feeds[name]
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch tensor, got {type(t).__name__}")
            t = t.to(self.device, self._dtypes[name]).contiguous()
            keep.append(t)
            if not self.context.set_input_shape(name, tuple(t.shape)):
                raise ValueError(f"{name}: shape {tuple(t.shape)} is outside the engine's optimization profile")
            self.context.set_tensor_address(name, t.data_ptr())
        outs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            o = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
            self.context.set_tensor_address(name, o.data_ptr())
            outs[name] = o
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        return outs[self.output_names[0]] if len(outs) == 1 else outs

    __call__ = run


def _torch_dtype(trt, dt):
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8,
             trt.bool: torch.bool}
    for name, td in (("bfloat16", torch.bfloat16), ("int64", torch.int64), ("uint8", torch.uint8)):
        if hasattr(trt, name):
            table[getattr(trt, name)] = td
    if dt not in table:
        raise TypeError(f"TensorRT tensor type {dt} has no torch equivalent here")
    return table[dt]
