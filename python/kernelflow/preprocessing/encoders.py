"""OneHotEncoder and OrdinalEncoder: scikit-learn's API, attributes and results (CSR or dense output).

Fit dictionary-encodes every column (``encode_strings`` on the host: strings, objects, pandas
categoricals, numbers; ``integer_categories`` on the device for integer torch tensors) and
compiles scikit-learn's rules (infrequent grouping, ``drop``, missing and unknown handling) into
a ``OneHotLayout`` / ``OrdinalLayout``; transform maps values to int32 codes and writes the output
with one ``one_hot`` / ``ordinal_encode`` kernel pass.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.base import OneToOneFeatureMixin
from sklearn.utils.validation import _check_feature_names_in, check_array, check_is_fitted, validate_data

from kernelflow._array import pyarrow_to_pandas, tensor_to_numpy
from kernelflow.io import persistable
from kernelflow.ops.categories import MISSING, UNKNOWN, encode_strings, integer_categories, map_codes
from kernelflow.ops.onehot import OneHotLayout, OrdinalLayout, one_hot, ordinal_encode
from kernelflow.preprocessing._base import KernelTransformer, set_init_params

_TORCH = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and v != v)


def _check_given_categories(cats: np.ndarray, values, j: int, type_name: str | None = None) -> None:
    """scikit-learn's checks of user-given categories (messages included)."""
    if cats.dtype.kind in "OS" and cats.size and all(isinstance(c, bytes) for c in cats if not _is_missing(c)):
        v = next((x for x in values if not _is_missing(x)), None)
        if v is not None and not isinstance(v, bytes):
            raise ValueError(f"In column {j}, the predefined categories have type 'bytes' which is incompatible with "
                             f"values of type '{type_name or type(v).__name__}'.")
    for c in list(cats)[:-1]:
        if isinstance(c, (float, np.floating)) and c != c:
            raise ValueError(f"Nan should be the last element in user provided categories, see categories {cats} in "
                             f"column #{j}")
    plain = [c for c in cats if not _is_missing(c)]
    if len(pd.unique(np.asarray(plain, dtype=object))) != len(plain) or sum(_is_missing(c) for c in cats) > 1:
        raise ValueError(f"In column {j}, the predefined categories contain duplicate elements.")


def _split_missing(cats: np.ndarray) -> tuple[np.ndarray, object, bool]:
    """(categories without a trailing missing value, that value, whether there was one)."""
    if cats.size and _is_missing(cats[-1]):
        return cats[:-1], cats[-1], True
    return cats, None, False


class _Encoder(KernelTransformer):
    """Shared fit/validation of the categorical encoders."""

    # -- input ---------------------------------------------------------------------------
    def _columns(self, X, reset: bool):
        """(list of host columns or None, torch int tensor or None, kind, device, n_samples)."""
        if isinstance(X, torch.Tensor):
            if X.dim() != 2:
                raise ValueError(f"Expected 2D input X of shape (n_samples, n_features), got shape {tuple(X.shape)}")
            if X.shape[0] < 1:
                raise ValueError(f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum of 1 is required.")
            if reset:
                self.n_features_in_ = int(X.shape[1])
                self.__dict__.pop("feature_names_in_", None)
            elif X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                 f"{self.n_features_in_} features as input.")
            # integer tensors stay on their device (integer_categories / map_codes) when the
            # categories are integers found in fit; anything else goes through the host path
            is_int = X.dtype in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)
            if is_int and (self.categories == "auto" if reset else
                           all(np.asarray(c).dtype.kind in "iu" for c in self.categories_)):
                return None, X, "torch", X.device, X.shape[0]
            Xn = X.detach().cpu().numpy()
            return [Xn[:, j] for j in range(Xn.shape[1])], None, "torch", X.device, Xn.shape[0]
        X = pyarrow_to_pandas(X)
        if type(X).__module__.split(".")[0] == "polars":
            X = X.to_pandas()
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[0] < 1:
                raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
            cols = []
            for j in range(X.shape[1]):
                c = X.iloc[:, j]
                if isinstance(c.dtype, pd.CategoricalDtype) or c.dtype.kind in "biuf":
                    cols.append(c if isinstance(c.dtype, pd.CategoricalDtype) else c.to_numpy())
                else:
                    cols.append(check_array(c.to_numpy(dtype=object), ensure_2d=False, dtype=None,
                                            ensure_all_finite="allow-nan"))
            return cols, None, "numpy", None, X.shape[0]
        Xt = check_array(X, dtype=None, ensure_all_finite="allow-nan")
        if not hasattr(X, "dtype") and Xt.dtype.kind == "U":
            # a list holding strings: object, so 55 stays the number 55 (scikit-learn's _check_X)
            Xt = check_array(X, dtype=object, ensure_all_finite="allow-nan")
        if reset:
            self._str_dtype = Xt.dtype if Xt.dtype.kind in "US" else None
        if Xt.dtype.kind in "US":  # fixed-width strings: object columns (categories_ get the input's dtype back)
            Xt = Xt.astype(object)
        validate_data(self, Xt, reset=reset, skip_check_array=True)
        return [Xt[:, j] for j in range(Xt.shape[1])], None, "numpy", None, Xt.shape[0]

    @staticmethod
    def _col_dtype(col) -> np.dtype:
        if isinstance(col, pd.Series):
            cd = col.dtype.categories.dtype
            return cd if cd.kind in "biuf" else np.dtype(object)
        return col.dtype if col.dtype.kind in "biuf" else np.dtype(object)

    # -- fit -----------------------------------------------------------------------------
    def _fit_categories(self, X, fit_unknown_error: bool):
        cols, tx, _, _, n = self._columns(X, reset=True)
        F = self.n_features_in_
        if self.categories != "auto" and len(self.categories) != F:
            raise ValueError("Shape mismatch: if categories is an array, it has to be of shape (n_features,).")
        cats_out, counts, n_missing = [], [], []
        if tx is not None:
            for vals, cnt in integer_categories(tx):
                cats_out.append(vals.cpu().numpy().astype(np.int64))
                counts.append(cnt.cpu().numpy().astype(np.int64).tolist())
                n_missing.append(0)
        else:
            for j, col in enumerate(cols):
                dt = self._col_dtype(col)
                if self.categories == "auto":
                    try:
                        enc = encode_strings(col)
                    except TypeError:
                        raise TypeError("Encoders require their input argument must be uniformly strings or "
                                        f"numbers (column {j})") from None
                    cats = np.asarray(enc.categories, dtype=dt) if dt != object else enc.categories
                    nm = enc.n_missing
                    if nm:
                        miss = np.asarray(col, dtype=object)[pd.isna(np.asarray(col, dtype=object))] if dt == object else []
                        mv = None if any(v is None for v in miss) else np.nan
                        cats = np.append(cats, np.array([mv], dtype=object)) if dt == object else np.append(cats.astype(np.float64), np.nan)
                else:
                    sd = getattr(self, "_str_dtype", None)
                    given = np.asarray(self.categories[j], dtype=dt if dt != object else object)
                    _check_given_categories(given, np.asarray(col, dtype=object) if dt == object else col, j,
                                            "str_" if sd is not None and sd.kind == "U" else None)
                    if sd is not None and sd.kind == "S" and given.dtype.kind in "OU" and not any(map(_is_missing, given)):
                        # byte-string input: the categories are cast to its dtype, as scikit-learn
                        given = np.asarray(given, dtype=sd.kind).astype(object)
                    plain, _, has_m = _split_missing(given)
                    if dt.kind in "biuf" and plain.size > 1 and not np.all(plain[1:] > plain[:-1]):
                        raise ValueError("Unsorted categories are not supported for numerical categories")
                    enc = encode_strings(col, plain)
                    if fit_unknown_error:
                        bad = (enc.codes <= UNKNOWN) | ((enc.codes == MISSING) if not has_m else False)
                        if bad.any():
                            vals = pd.unique(np.asarray(col, dtype=object)[bad])
                            raise ValueError(f"Found unknown categories {list(vals)} in column {j} during fit")
                    cats = given
                    nm = max(enc.n_missing, 1) if has_m else 0
                cats_out.append(cats)
                counts.append(enc.counts.astype(np.int64).tolist())
                n_missing.append(int(nm))
        sd = getattr(self, "_str_dtype", None)
        if sd is not None and self.categories == "auto":  # numpy string input: string categories, as scikit-learn
            cats_out = [c.astype(sd) if not any(_is_missing(v) for v in c) else c for c in cats_out]
        self.categories_ = cats_out
        self._counts = counts
        self._n_missing = n_missing
        self._n_samples = int(n)

    _none_is_category = False  # OrdinalEncoder: None is a category like any other, only NaN is missing

    def _none_cols(self) -> list[bool]:
        return [self._none_is_category and np.asarray(c).size > 0 and np.asarray(c)[-1] is None
                for c in self.categories_]

    def _plain_categories(self) -> list[np.ndarray]:
        return [np.asarray(c) if nc else _split_missing(np.asarray(c))[0]
                for c, nc in zip(self.categories_, self._none_cols())]

    def _layout_inputs(self):
        """(categories, counts, n_missing) for the layout; a None category counts as a category."""
        counts, nm = [], []
        for j, nc in enumerate(self._none_cols()):
            counts.append(list(self._counts[j]) + ([self._n_missing[j]] if nc else []))
            nm.append(0 if nc else self._n_missing[j])
        return self._plain_categories(), counts, nm

    # -- transform -----------------------------------------------------------------------
    def _codes(self, X):
        cols, tx, kind, device, n = self._columns(X, reset=False)
        plain = self._plain_categories()
        if tx is not None:
            codes = map_codes(tx, [torch.as_tensor(c) for c in plain])
            return codes, kind, tx.device
        codes = np.empty((n, len(cols)), dtype=np.int32)
        raise_unknown = getattr(self, "handle_unknown", None) == "error"
        for j, (col, nc) in enumerate(zip(cols, self._none_cols())):
            c = encode_strings(col, plain[j]).codes
            if raise_unknown:  # scikit-learn's message, naming the unknown values
                bad = (c <= UNKNOWN) | ((c == MISSING) & (self._n_missing[j] == 0) & (not nc))
                if bad.any():
                    vals = pd.unique(np.asarray(col, dtype=object)[bad])
                    try:
                        vals = sorted(vals)
                    except TypeError:
                        vals = list(vals)
                    raise ValueError(f"Found unknown categories {vals} in column {j} during transform")
            codes[:, j] = np.where(c == MISSING, len(plain[j]) - 1, c) if nc else c
        t = torch.from_numpy(codes)
        if device is not None and device.type != "cpu":
            t = t.to(device)
        return t, kind, device

    # -- persistence: categories as JSON (str / int / float / None / NaN survive) -----------
    def _get_state(self) -> dict:
        state = {"n_features_in_": self.n_features_in_,
                 "categories_": [{"dtype": np.asarray(c).dtype.str if np.asarray(c).dtype != object else "object",
                                  "values": np.asarray(c).tolist()} for c in self.categories_],
                 "_counts": self._counts, "_n_missing": self._n_missing, "_n_samples": self._n_samples}
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in_"] = self.feature_names_in_
        return state

    def _set_state(self, state: dict) -> None:
        cats = state.pop("categories_")
        if not isinstance(cats, list):
            raise ValueError("categories_ must be a list")
        state["categories_"] = [np.array(c["values"], dtype=object if c["dtype"] == "object" else np.dtype(c["dtype"]))
                                for c in cats]
        super()._set_state(state)
        if len(self.categories_) != self.n_features_in_:
            raise ValueError("categories_ must have one entry per feature")
        self._finish_fit()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _torch_dtype(self) -> tuple[torch.dtype, np.dtype]:
        try:
            nd = np.dtype(self.dtype)
        except TypeError:
            raise ValueError(f"dtype must be a numpy number dtype, got {self.dtype!r}") from None
        if nd.kind not in "biuf":
            raise ValueError(f"dtype must be a numpy number dtype, got {self.dtype!r}")
        return _TORCH.get(nd, torch.float64), nd

    def _finish(self, out: torch.Tensor, nd: np.dtype, kind: str):
        if _TORCH.get(nd) != out.dtype:
            out = out.to(torch.from_numpy(np.zeros(0, dtype=nd)).dtype)
        return self._output(out, kind)


@persistable
class OneHotEncoder(_Encoder):
    """Encode categorical features as a one-hot numeric array.

    Same parameters, attributes and results as ``sklearn.preprocessing.OneHotEncoder``:
    ``sparse_output=True`` (the default) returns a scipy CSR array built directly from the codes
    (a torch sparse CSR tensor for torch input), ``sparse_output=False`` the dense output of one
    ``one_hot`` kernel pass. Plus ``backend`` (auto, cpu, cuda, triton, torch). Integer torch
    tensors stay on their device.
    """

    def __init__(self, *, categories="auto", drop=None, sparse_output=True, dtype=np.float64,
                 handle_unknown="error", min_frequency=None, max_categories=None,
                 feature_name_combiner="concat", backend="auto"):
        set_init_params(self, locals())

    def _check_params(self):
        if not isinstance(self.sparse_output, (bool, np.bool_)):
            raise ValueError("The 'sparse_output' parameter of OneHotEncoder must be an instance of 'bool'. Got "
                             f"{self.sparse_output!r} instead.")
        if self.sparse_output and getattr(self, "_sklearn_output_config", {}).get("transform") in ("pandas", "polars"):
            raise ValueError(f"{self._sklearn_output_config['transform'].capitalize()} output does not support sparse "
                             "data. Set sparse_output=False to output pandas dataframes or disable Pandas output via "
                             '`ohe.set_output(transform="default").')
        if self.handle_unknown not in ("error", "ignore", "infrequent_if_exist", "warn"):
            raise ValueError("handle_unknown must be 'error', 'ignore', 'infrequent_if_exist' or 'warn', "
                             f"got {self.handle_unknown!r}")
        if not (self.feature_name_combiner == "concat" or callable(self.feature_name_combiner)):
            raise ValueError(f"feature_name_combiner must be 'concat' or a callable, got {self.feature_name_combiner!r}")
        if isinstance(self.categories, str) and self.categories != "auto":
            raise ValueError(f"categories must be 'auto' or a list of arrays, got {self.categories!r}")
        if isinstance(self.drop, str) and self.drop not in ("first", "if_binary"):
            raise ValueError(f"drop must be None, 'first', 'if_binary' or an array, got {self.drop!r}")
        self._torch_dtype()

    def fit(self, X, y=None):
        self._check_params()
        self._fit_categories(X, fit_unknown_error=self.handle_unknown == "error")
        self._finish_fit()
        return self

    def _finish_fit(self):
        plain = self._plain_categories()
        missing_label = ["None" if (np.asarray(c).size and np.asarray(c)[-1] is None) else "nan" for c in self.categories_]
        drop = self.drop
        if drop is not None and not isinstance(drop, str):
            drop = list(np.asarray(drop, dtype=object))
            if len(drop) != len(self.categories_):
                raise ValueError(f"`drop` should have length equal to the number of features ({len(self.categories_)}), "
                                 f"got {len(drop)}")
        self._layout = OneHotLayout.from_categories(
            plain, self._counts, self._n_missing, handle_unknown=self.handle_unknown, drop=drop,
            min_frequency=self.min_frequency, max_categories=self.max_categories)
        self._missing_label = missing_label
        lay = self._layout
        self._infrequent_indices = list(lay.infrequent)
        if self.drop is None:
            self.drop_idx_ = None
        else:
            d = []
            for j, g in enumerate(lay.drop_idx):
                if g is None:
                    d.append(None)
                    continue
                d.append(self._ungroup(j, g))
            self.drop_idx_ = np.array(d, dtype=object)  # object, as scikit-learn (entries may be None)

    def _ungroup(self, j: int, g: int) -> int:
        """Index into categories_[j] of grouped output g (the first infrequent one for the group)."""
        mask = self._mask(j)
        if mask is None:
            return g
        freq = np.flatnonzero(~mask)
        return int(freq[g]) if g < freq.size else int(np.flatnonzero(mask)[0])

    def _mask(self, j: int):
        inf = self._layout.infrequent[j]
        if inf is None:
            return None
        m = np.zeros(len(self.categories_[j]), dtype=bool)
        m[inf] = True
        return m

    @property
    def infrequent_categories_(self):
        check_is_fitted(self, "categories_")
        return [None if idx is None else np.asarray(self.categories_[j])[idx]
                for j, idx in enumerate(self._layout.infrequent)]

    def _block_values(self, j: int) -> list:
        """Category value of every output column of feature j (before drop)."""
        cats = list(np.asarray(self.categories_[j]))
        mask = self._mask(j)
        if mask is not None:
            cats = [c for c, m in zip(cats, mask) if not m] + ["infrequent_sklearn"]
        return cats

    def transform(self, X):
        check_is_fitted(self, "categories_")
        self._check_params()
        tdt, nd = self._torch_dtype()
        codes, kind, _ = self._codes(X)
        if self.handle_unknown == "warn" or (self.handle_unknown in ("ignore", "infrequent_if_exist") and self.drop is not None):
            K = torch.tensor(self._layout.n_categories, device=codes.device)
            miss_unk = torch.tensor([n == 0 for n in self._n_missing], device=codes.device) & (codes == MISSING)
            unk = ((codes <= UNKNOWN) | (codes >= K) | miss_unk).any(0).cpu().numpy()
            if unk.any():
                cols = [int(j) for j in np.flatnonzero(unk)]
                what = ("the infrequent category" if self.handle_unknown in ("warn", "infrequent_if_exist")
                        else "all zeros")
                warnings.warn(f"Found unknown categories in columns {cols} during transform. These unknown "
                              f"categories will be encoded as {what}.", UserWarning)
        names_in = list(getattr(self, "feature_names_in_", [f"x{j}" for j in range(self.n_features_in_)]))
        if self.sparse_output:
            return self._sparse_one_hot(codes, nd, kind, names_in)
        out = one_hot(codes, self._layout, out_dtype=tdt, backend=self.backend, feature_names_in=names_in)
        return self._finish(out, nd, kind)

    def _sparse_one_hot(self, codes: torch.Tensor, nd: np.dtype, kind: str, names_in: list):
        """CSR output built directly from the codes [N, F]: each row lights at most one column per
        feature, so with nothing dropped or ignored indptr = arange(N + 1) * F and the indices are
        the looked-up codes themselves; otherwise the rows' counts give indptr. scipy CSR for host
        input, a torch sparse CSR tensor for torch input (on its device)."""
        lay = self._layout
        dev = codes.device
        key = ("csr", dev)
        if key not in lay._device_cache:
            lay._device_cache[key] = (torch.as_tensor(lay.table, dtype=torch.int64, device=dev),
                                      torch.tensor(lay.table_offsets, dtype=torch.int64, device=dev),
                                      torch.tensor(lay.n_categories, dtype=torch.int64, device=dev),
                                      torch.tensor(lay.offsets, dtype=torch.int64, device=dev))
        table, toff, K, off = lay._device_cache[key]
        c = codes.to(torch.int64)
        slot = torch.where((c >= 0) & (c < K), c, torch.where(c == MISSING, K, K + 1))  # [N, F] table slot
        col = table[toff + slot]  # [N, F] output column within the block, ZEROS (-1) or ERROR (-2)
        if lay.can_raise and bool((col == -2).any()):
            bad = torch.nonzero((col == -2).any(1)).flatten()[:1]
            one_hot(codes[bad], lay, out_dtype=torch.float32, backend=self.backend, feature_names_in=names_in)  # raises
        N, F = c.shape
        live = col >= 0
        idx = col + off
        if bool(live.all()):
            indptr = torch.arange(N + 1, dtype=torch.int64, device=dev) * F
            indices = idx.reshape(-1)
        else:
            indptr = torch.zeros(N + 1, dtype=torch.int64, device=dev)
            indptr[1:] = torch.cumsum(live.sum(1), 0)
            indices = idx[live]
        tdt = _TORCH.get(nd, torch.float64)
        if kind == "torch" or getattr(self, "_kf_output", None) == "torch":
            vals = torch.ones(indices.numel(), dtype=tdt, device=dev)
            return torch.sparse_csr_tensor(indptr, indices, vals, (N, lay.width))
        import scipy.sparse as sp

        ip, ix = indptr.cpu().numpy(), indices.cpu().numpy()
        if lay.width < 2**31 and ix.size < 2**31:  # scipy's index dtype for this size
            ip, ix = ip.astype(np.int32), ix.astype(np.int32)
        return sp.csr_array((np.ones(ix.size, dtype=nd), ix, ip), shape=(N, lay.width))

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X).transform(X)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "categories_")
        names_in = _check_feature_names_in(self, input_features)
        out = []
        for j, name in enumerate(names_in):
            vals = self._block_values(j)
            d = self._layout.drop_idx[j]
            if d is not None:
                del vals[d]
            for v in vals:
                if self.feature_name_combiner == "concat":
                    out.append(f"{name}_{v}")
                else:
                    s = self.feature_name_combiner(name, v)
                    if not isinstance(s, str):
                        raise TypeError(f"When `feature_name_combiner` is a callable, it should return a Python "
                                        f"string. Got {type(s)} instead.")
                    out.append(s)
        return np.asarray(out, dtype=object)

    def inverse_transform(self, X):
        check_is_fitted(self, "categories_")
        if isinstance(X, torch.Tensor):
            X = tensor_to_numpy(X.to_dense() if X.layout != torch.strided else X)
        X = check_array(X, dtype=None, accept_sparse="csr")
        if hasattr(X, "toarray"):  # the inverse returns a dense object array: one block per feature
            X = X.toarray()
        W = self._layout.width
        if X.shape[1] != W:
            raise ValueError(f"Shape of the passed X data is not correct. Expected {W} columns, got {X.shape[1]}.")
        dt = np.result_type(*[np.asarray(c).dtype for c in self.categories_])
        res = np.empty((X.shape[0], self.n_features_in_), dtype=object)
        need_object = False
        for j in range(self.n_features_in_):
            vals = self._block_values(j)
            d = self._layout.drop_idx[j]
            dropped = vals.pop(d) if d is not None else None
            off, w = self._layout.offsets[j], self._layout.widths[j]
            sub = X[:, off:off + w]
            col = np.empty(X.shape[0], dtype=object)
            if w:
                col[:] = np.asarray(vals, dtype=object)[np.argmax(sub, axis=1)]
                zero = ~sub.any(axis=1)
            else:
                zero = np.ones(X.shape[0], dtype=bool)
            if zero.any():
                if d is not None:
                    col[zero] = dropped
                elif self.handle_unknown in ("ignore", "infrequent_if_exist", "warn"):
                    col[zero] = None
                    need_object = True
                else:
                    raise ValueError(f"Samples {np.flatnonzero(zero)} can not be inverted when drop=None and "
                                     "handle_unknown='error' because they contain all zeros")
            need_object |= self._mask(j) is not None
            res[:, j] = col
        return res if need_object or dt == object else res.astype(dt)


@persistable
class OrdinalEncoder(OneToOneFeatureMixin, _Encoder):
    """Encode categorical features as an integer array (category index per column).

    Same parameters, attributes and results as ``sklearn.preprocessing.OrdinalEncoder``, plus
    ``backend``. Integer torch tensors stay on their device.
    """

    _none_is_category = True

    def __init__(self, *, categories="auto", dtype=np.float64, handle_unknown="error", unknown_value=None,
                 encoded_missing_value=np.nan, min_frequency=None, max_categories=None, backend="auto"):
        set_init_params(self, locals())

    def _check_params(self):
        if self.handle_unknown not in ("error", "use_encoded_value"):
            raise ValueError(f"handle_unknown must be 'error' or 'use_encoded_value', got {self.handle_unknown!r}")
        if isinstance(self.categories, str) and self.categories != "auto":
            raise ValueError(f"categories must be 'auto' or a list of arrays, got {self.categories!r}")
        uv = self.unknown_value
        if self.handle_unknown == "use_encoded_value":
            if not ((isinstance(uv, numbers.Integral) and not isinstance(uv, bool)) or (isinstance(uv, float) and uv != uv)):
                raise TypeError("unknown_value should be an integer or np.nan when handle_unknown is "
                                f"'use_encoded_value', got {uv}.")
        elif uv is not None:
            raise TypeError(f"unknown_value should only be set when handle_unknown is 'use_encoded_value', got {uv}.")
        _, nd = self._torch_dtype()
        if nd.kind not in "f" and ((isinstance(uv, float) and uv != uv)):
            raise ValueError("When unknown_value is np.nan, the dtype parameter should be a float dtype. Got "
                             f"{self.dtype}.")

    def fit(self, X, y=None):
        self._check_params()
        self._fit_categories(X, fit_unknown_error=self.handle_unknown == "error")
        self._finish_fit()
        if self.handle_unknown == "use_encoded_value":
            n_enc = [int(self._layout.table[self._layout.table_offsets[j]:self._layout.table_offsets[j] + k].max()) + 1
                     if k else 0 for j, k in enumerate(self._layout.n_categories)]
            if 0 <= self.unknown_value < max(n_enc + [0]):
                raise ValueError(f"The used value for unknown_value {self.unknown_value} is one of the values "
                                 "already used for encoding the seen categories.")
        emv = self.encoded_missing_value
        if not _is_missing(emv):
            bad = [j for j, k in enumerate(self._layout.n_categories)
                   if self._layout_inputs()[2][j] and 0 <= emv < k]
            if bad:
                names = getattr(self, "feature_names_in_", None)
                raise ValueError(f"encoded_missing_value ({emv}) is already used to encode a known category in "
                                 f"features: {[names[j] for j in bad] if names is not None else bad}")
        return self

    def _finish_fit(self):
        self._layout = OrdinalLayout.from_categories(
            *self._layout_inputs(), handle_unknown=self.handle_unknown,
            unknown_value=self.unknown_value, encoded_missing_value=self.encoded_missing_value,
            min_frequency=self.min_frequency, max_categories=self.max_categories)

    @property
    def infrequent_categories_(self):
        check_is_fitted(self, "categories_")
        return [None if idx is None else np.asarray(self.categories_[j])[idx]
                for j, idx in enumerate(self._layout.infrequent)]

    def transform(self, X):
        check_is_fitted(self, "categories_")
        tdt, nd = self._torch_dtype()
        codes, kind, _ = self._codes(X)
        odt = torch.int64 if nd.kind in "iu" else tdt
        out = ordinal_encode(codes, self._layout, out_dtype=odt, backend=self.backend,
                             feature_names_in=list(getattr(self, "feature_names_in_", [f"x{j}" for j in range(self.n_features_in_)])))
        return self._finish(out, nd, kind)

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        check_is_fitted(self, "categories_")
        X = tensor_to_numpy(X) if isinstance(X, torch.Tensor) else X
        X = check_array(X, dtype=None, ensure_all_finite="allow-nan")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"Shape of the passed X data is not correct. Expected {self.n_features_in_} columns, "
                             f"got {X.shape[1]}.")
        dt = np.result_type(*[np.asarray(c).dtype for c in self.categories_])
        res = np.empty(X.shape, dtype=object)
        need_object = False
        for j in range(self.n_features_in_):
            cats = np.asarray(self.categories_[j])
            _, mv, has_m = _split_missing(cats)
            plain = self._plain_categories()[j]
            has_m = has_m and not self._none_cols()[j]
            inf = self._layout.infrequent[j]
            labels = list(plain)
            if inf is not None:
                keep = np.ones(len(plain), dtype=bool)
                keep[inf] = False
                labels = [c for c, k in zip(labels, keep) if k] + ["infrequent_sklearn"]
                need_object = True
            labels = np.asarray(labels, dtype=object)
            v = X[:, j].astype(np.float64)
            col = np.empty(X.shape[0], dtype=object)
            miss = (np.isnan(v) if _is_missing(self.encoded_missing_value) else v == self.encoded_missing_value) \
                if has_m else np.zeros(v.shape, dtype=bool)
            unknown = np.zeros(v.shape, dtype=bool)
            if self.handle_unknown == "use_encoded_value":
                unknown = np.isnan(v) if _is_missing(self.unknown_value) else v == self.unknown_value
                unknown &= ~miss
            ok = ~miss & ~unknown
            col[ok] = labels[v[ok].astype(np.int64)]
            col[miss] = mv
            if unknown.any():
                col[unknown] = None
                need_object = True
            res[:, j] = col
        return res if need_object or dt == object else res.astype(dt)
