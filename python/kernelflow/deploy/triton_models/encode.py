"""The encode step of the served pipeline, in plain numpy: raw columns -> the graph's inputs.

``write_model_repository`` copies this file next to the Triton python-backend encode model (as
``kernelflow_encode.py``, with ``kernelflow_drift_stats.py``), together with ``encoder.json``,
the fitted preprocessor's column lists and category dictionaries. It does what
``kernelflow.Preprocessor.inputs(df)`` does on the host, value for value:

- numeric and passthrough columns (FP32, NaN = missing) -> ``num`` / ``passthrough`` float32;
- categorical columns -> ``cat`` int64 codes: the index of the value in the column's fitted
  categories, missing values take the imputed category's code, unknown values -1. String
  columns arrive as BYTES (UTF-8; an empty string is a missing value), integer ones as INT64,
  float ones as FP64 (NaN = missing), booleans as BOOL.

With ``handle_unknown="error"`` an unknown category is an error, as in ``Preprocessor.transform``
(the graph itself cannot raise). Every malformed request raises ``EncodeError`` with a message
that names the column and the problem; the server answers it as an error response.
"""

from __future__ import annotations

import numpy as np

ENCODER_FORMAT = "kernelflow-triton-encoder"
ENCODER_VERSION = 1
MISSING_BYTES = b"\x00"  # a missing value (None / NaN) in a BYTES column
# category kind -> (Triton dtype, numpy dtype of the values)
KINDS = {"string": ("BYTES", object), "int": ("INT64", np.int64), "float": ("FP64", np.float64), "bool": ("BOOL", np.bool_)}


class EncodeError(ValueError):
    """A request the encode step cannot serve; the message names the column and the problem."""


def category_kind(categories, column: str) -> str:
    """The wire kind of a categorical column from its fitted categories' Python types."""
    types = {type(v) for v in categories}
    if types <= {str}:
        return "string"
    if types <= {bool}:
        return "bool"
    if types <= {int}:
        return "int"
    if types <= {int, float}:
        return "float"
    raise ValueError(f"categorical column {column!r} mixes category types {sorted(t.__name__ for t in types)}; "
                     "it cannot be sent as one Triton tensor")


class Encoder:
    """Encodes one request's columns with the fitted dictionaries of ``spec`` (encoder.json)."""

    def __init__(self, spec: dict):
        if not isinstance(spec, dict) or spec.get("format") != ENCODER_FORMAT or spec.get("version") != ENCODER_VERSION:
            raise ValueError(f"encoder spec must be a {ENCODER_FORMAT!r} version {ENCODER_VERSION} document")
        self.numeric = list(spec["numeric"])
        self.passthrough = list(spec["passthrough"])
        self.categorical = list(spec["categorical"])
        self.blocks = list(spec["blocks"])  # the graph's inputs, in order: a subset of num / cat / passthrough
        self.handle_unknown = spec["handle_unknown"]
        self._tables = []
        for c in self.categorical:
            kind, cats = c["kind"], c["categories"]
            if kind == "string":
                table = {v.encode("utf-8"): i for i, v in enumerate(cats)}
            else:
                vals = np.asarray(cats, dtype=KINDS[kind][1])
                order = np.argsort(vals, kind="stable")
                table = (vals[order], order.astype(np.int64))  # sorted values, their codes
            self._tables.append(table)

    def columns(self) -> list[tuple[str, str]]:
        """(input name, Triton dtype) of every column the request must carry, in config order."""
        cols = [(n, "FP32") for n in self.numeric]
        cols += [(c["name"], KINDS[c["kind"]][0]) for c in self.categorical]
        cols += [(n, "FP32") for n in self.passthrough]
        return cols

    # ------------------------------------------------------------------ encoding
    def _column(self, cols: dict, name: str, dtype, n_rows: int | None) -> np.ndarray:
        if name not in cols or cols[name] is None:
            raise EncodeError(f"missing input column {name!r}")
        a = np.asarray(cols[name])
        if a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim != 1:
            raise EncodeError(f"column {name!r} must have shape [N] or [N, 1], got {list(a.shape)}")
        if dtype is object:
            if a.dtype != object:
                raise EncodeError(f"column {name!r} must be BYTES (strings), got {a.dtype}")
        elif a.dtype != dtype:
            raise EncodeError(f"column {name!r} must be {np.dtype(dtype).name}, got {a.dtype}")
        if n_rows is not None and a.shape[0] != n_rows:
            raise EncodeError(f"column {name!r} has {a.shape[0]} rows, the other columns {n_rows}")
        return a

    def _codes(self, j: int, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """codes [N] int64 (missing -> the fill's code, unknown -> -1) and the missing mask [N]."""
        c = self.categorical[j]
        table = self._tables[j]
        fill = int(c["fill_code"])
        if c["kind"] == "string":
            vals = [v.encode("utf-8") if isinstance(v, str) else v for v in a]
            bad = next((v for v in vals if not isinstance(v, bytes)), None)
            if bad is not None:
                raise EncodeError(f"column {c['name']!r} must hold strings, got a {type(bad).__name__}")
            missing = np.fromiter((v == MISSING_BYTES for v in vals), dtype=bool, count=len(vals))
            codes = np.fromiter((table.get(v, -1) for v in vals), dtype=np.int64, count=len(vals))
        else:
            sorted_vals, order = table
            missing = np.isnan(a) if c["kind"] == "float" else np.zeros(a.shape[0], dtype=bool)
            if sorted_vals.size:
                pos = np.clip(np.searchsorted(sorted_vals, a), 0, sorted_vals.size - 1)
                codes = np.where(sorted_vals[pos] == a, order[pos], -1)
            else:
                codes = np.full(a.shape[0], -1, dtype=np.int64)
        codes[missing] = fill
        return codes.astype(np.int64), missing

    def encode(self, cols: dict) -> tuple[dict, np.ndarray, np.ndarray]:
        """cols: input name -> array [N] or [N, 1]. Returns ({block name: array}, num_all
        [N, n_numeric + n_passthrough] float32 (for drift), cat_missing [N, n_categorical] bool),
        where the blocks are num [N, n_numeric] float32, cat [N, n_categorical] int64 and
        passthrough [N, n_passthrough] float32, as many as the graph takes."""
        n_rows = None
        num_cols, pas_cols, codes, missing = [], [], [], []
        for name in self.numeric:
            a = self._column(cols, name, np.float32, n_rows)
            n_rows = a.shape[0]
            num_cols.append(a)
        for j, c in enumerate(self.categorical):
            a = self._column(cols, c["name"], KINDS[c["kind"]][1], n_rows)
            n_rows = a.shape[0]
            k, m = self._codes(j, a)
            codes.append(k)
            missing.append(m)
        for name in self.passthrough:
            a = self._column(cols, name, np.float32, n_rows)
            n_rows = a.shape[0]
            pas_cols.append(a)
        if not n_rows:
            raise EncodeError("empty batch: a request needs at least one row")
        num = np.stack(num_cols, 1) if num_cols else np.zeros((n_rows, 0), np.float32)
        cat = np.stack(codes, 1) if codes else np.zeros((n_rows, 0), np.int64)
        pas = np.stack(pas_cols, 1) if pas_cols else np.zeros((n_rows, 0), np.float32)
        cat_missing = np.stack(missing, 1) if missing else np.zeros((n_rows, 0), bool)
        if self.handle_unknown == "error" and cat.size:
            bad = (cat < 0).any(0)
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                row = int(np.flatnonzero(cat[:, j] < 0)[0])
                value = cols[self.categorical[j]["name"]]
                value = np.asarray(value).reshape(-1)[row]
                shown = repr(value if not isinstance(value, bytes) or len(value) <= 60 else value[:60] + b"...")
                names = [self.categorical[i]["name"] for i in np.flatnonzero(bad)]
                raise EncodeError(f"Found unknown categories in columns {names} during transform "
                                  f"(handle_unknown='error'); e.g. {shown} in column {names[0]!r}")
        blocks = {"num": num, "cat": cat, "passthrough": pas}
        return {b: blocks[b] for b in self.blocks}, np.concatenate([num, pas], 1), cat_missing
