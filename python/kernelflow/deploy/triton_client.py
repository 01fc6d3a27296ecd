"""``TritonClient``: a DataFrame in, the served pipeline's prediction out, over HTTP or gRPC.

The columns travel as they are, one tensor per column, typed as the ensemble's inputs say
(numbers FP32 with NaN for missing; strings BYTES with ``MISSING_BYTES`` for missing; integer,
float and bool categories INT64 / FP64 / BOOL). The conversions are the ones
``Preprocessor.inputs`` makes locally (numbers through float64 to float32), so the server gets
the same numbers as the local pipeline. Frames longer than the model's ``max_batch_size`` go
as several requests.
"""

from __future__ import annotations

import numpy as np

from kernelflow.deploy.triton_models.encode import MISSING_BYTES

PROTOCOLS = ("http", "grpc")


class TritonClientError(RuntimeError):
    """The server answered with an error, or could not be reached; the message says which."""


def _frame(df):
    import pandas as pd

    if isinstance(df, pd.DataFrame):
        return df
    mod = type(df).__module__.split(".")[0]
    if mod in ("pyarrow", "polars"):
        return df.to_pandas()
    if isinstance(df, dict):
        return pd.DataFrame(df)
    raise TypeError(f"df must be a pandas / pyarrow / polars DataFrame or a dict of columns, got {type(df).__name__}")


def column_tensor(col, name: str, datatype: str) -> np.ndarray:
    """One frame column as the [N, 1] array the input ``name`` of type ``datatype`` takes."""
    import pandas as pd

    s = col if isinstance(col, pd.Series) else pd.Series(col)
    if datatype == "FP32":
        if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
            raise TypeError(f"column {name!r} must be numeric, got dtype {s.dtype}")
        a = s.to_numpy(dtype=np.float64, na_value=np.nan).astype(np.float32)  # as Preprocessor.inputs
    elif datatype == "FP64":
        if not pd.api.types.is_numeric_dtype(s):
            raise TypeError(f"column {name!r} must be numeric (float categories), got dtype {s.dtype}")
        a = s.to_numpy(dtype=np.float64, na_value=np.nan)
    elif datatype == "INT64":
        if s.isna().any():
            raise ValueError(f"column {name!r} has missing values, but its categories are integers (INT64 "
                             "carries no missing value); fill them first")
        if pd.api.types.is_integer_dtype(s):
            a = s.to_numpy(dtype=np.int64)
        elif pd.api.types.is_float_dtype(s) and np.all(np.mod(s.to_numpy(dtype=np.float64), 1) == 0):
            a = s.to_numpy(dtype=np.float64).astype(np.int64)
        else:
            raise TypeError(f"column {name!r} must hold integers, got dtype {s.dtype}")
    elif datatype == "BOOL":
        if s.isna().any() or not pd.api.types.is_bool_dtype(s):
            raise TypeError(f"column {name!r} must be boolean without missing values, got dtype {s.dtype}")
        a = s.to_numpy(dtype=bool)
    elif datatype == "BYTES":
        vals = s.astype(object).to_numpy()
        out = np.empty(len(vals), dtype=object)
        for i, v in enumerate(vals):
            if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
                out[i] = MISSING_BYTES
            elif isinstance(v, str):
                out[i] = v.encode("utf-8")
            elif isinstance(v, bytes):
                out[i] = v
            else:
                raise TypeError(f"column {name!r} holds strings; row {i} is a {type(v).__name__} ({v!r})")
        a = out
    else:
        raise TypeError(f"input {name!r} has Triton type {datatype}, which TritonClient does not send")
    return a.reshape(-1, 1)


class TritonClient:
    """Client of a served kernelflow pipeline.

    url : "host:port", "http://host:port" or "grpc://host:port" (the scheme picks the protocol).
    name : the pipeline's name in the repository (``write_model_repository(name=...)``).
    protocol : "http" or "grpc"; overrides the scheme. version : None = the newest version (the
        ``<name>`` ensemble), k = version k (``<name>_v<k>``). timeout : seconds per request.
    """

    def __init__(self, url: str, name: str = "kernelflow", *, protocol: str | None = None,
                 version: int | None = None, timeout: float = 60.0):
        if not isinstance(url, str) or not url:
            raise ValueError(f"url must be 'host:port' (optionally with http:// or grpc://), got {url!r}")
        scheme, _, rest = url.rpartition("://")
        if scheme and scheme not in PROTOCOLS:
            raise ValueError(f"url scheme must be http:// or grpc://, got {scheme!r}")
        protocol = protocol or scheme or "http"
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise ValueError(f"version must be an int >= 1 or None, got {version!r}")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.url, self.protocol, self.name, self.version, self.timeout = rest, protocol, name, version, float(timeout)
        self.model = name if version is None else f"{name}_v{version}"
        self._client = None
        self._meta = None

    # ------------------------------------------------------------------ connection
    def _lib(self):
        if self.protocol == "http":
            import tritonclient.http as lib
        else:
            import tritonclient.grpc as lib
        return lib

    def _conn(self):
        if self._client is None:
            lib = self._lib()
            if self.protocol == "http":
                self._client = lib.InferenceServerClient(self.url, connection_timeout=self.timeout,
                                                         network_timeout=self.timeout)
            else:
                self._client = lib.InferenceServerClient(self.url)
        return self._client

    def _call(self, what: str, fn):
        from tritonclient.utils import InferenceServerException

        try:
            return fn(self._conn())
        except InferenceServerException as e:
            msg = e.message() if callable(getattr(e, "message", None)) else str(e)
            if "failed to connect" in str(msg).lower() or "unavailable" in str(e.status() or "").lower():
                self.close()
            raise TritonClientError(f"{what} on {self.protocol}://{self.url} ({self.model}): {msg}") from None
        except Exception as e:  # a dropped connection, a refused one, a timeout: reconnect next time
            self.close()
            raise TritonClientError(f"{what}: cannot reach Triton at {self.protocol}://{self.url}: "
                                    f"{type(e).__name__}: {e}") from e

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is dropped anyway
                pass
            self._client = None

    def is_ready(self) -> bool:
        """Server live and this pipeline's model ready (False when unreachable)."""
        try:
            return bool(self._call("readiness", lambda c: c.is_server_ready() and c.is_model_ready(self.model)))
        except TritonClientError:
            return False

    def metadata(self) -> dict:
        """{"inputs": [(name, datatype)], "outputs": [names], "max_batch_size": int} of the pipeline."""
        if self._meta is None:
            def get(c):
                if self.protocol == "http":
                    m, cfg = c.get_model_metadata(self.model), c.get_model_config(self.model)
                    return ([(i["name"], i["datatype"]) for i in m["inputs"]], [o["name"] for o in m["outputs"]],
                            int(cfg.get("max_batch_size", 0)))
                m, cfg = c.get_model_metadata(self.model), c.get_model_config(self.model).config
                return [(i.name, i.datatype) for i in m.inputs], [o.name for o in m.outputs], int(cfg.max_batch_size)

            inputs, outputs, mbs = self._call("model metadata", get)
            self._meta = {"inputs": inputs, "outputs": outputs, "max_batch_size": mbs}
        return self._meta

    # ------------------------------------------------------------------ inference
    def tensors(self, df) -> dict:
        """The request's arrays, input name -> [N, 1] array (checked and converted here)."""
        df = _frame(df)
        names = {str(c): c for c in df.columns}
        out = {}
        inputs = self.metadata()["inputs"]
        missing = [n for n, _ in inputs if n not in names]
        if missing:
            raise ValueError(f"columns {missing} are missing from the frame; the pipeline takes {[n for n, _ in inputs]}")
        for n, dt in inputs:
            out[n] = column_tensor(df[names[n]], n, dt)
        return out

    def infer_arrays(self, arrays: dict, output: str | None = None) -> np.ndarray:
        """One request of raw arrays (input name -> [N, 1] array), returning ``output``."""
        lib = self._lib()
        from tritonclient.utils import np_to_triton_dtype

        output = output or self.metadata()["outputs"][0]
        reqs = []
        for n, a in arrays.items():
            t = lib.InferInput(n, list(a.shape), np_to_triton_dtype(a.dtype) if a.dtype != object else "BYTES")
            t.set_data_from_numpy(a)
            reqs.append(t)
        outs = [lib.InferRequestedOutput(output)]
        if self.protocol == "http":
            res = self._call("inference", lambda c: c.infer(self.model, reqs, outputs=outs))
        else:
            res = self._call("inference", lambda c: c.infer(self.model, reqs, outputs=outs, client_timeout=self.timeout))
        return res.as_numpy(output)

    def predict(self, df) -> np.ndarray:
        """The pipeline's output for every row of df (the model's raw output, e.g. logits)."""
        arrays = self.tensors(df)
        n = next(iter(arrays.values())).shape[0] if arrays else 0
        if n == 0:
            raise ValueError("df has no rows")
        step = self.metadata()["max_batch_size"] or n
        parts = [self.infer_arrays({k: v[i:i + step] for k, v in arrays.items()}) for i in range(0, n, step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __enter__(self) -> "TritonClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TritonClient({self.protocol}://{self.url}, model={self.model!r})"
